//! What a chat screen asks for: pages of history, read marks, unread counts, resending a failed message.

use crate::store::prelude::*;
use magpie_proto::Username;
use uuid::Uuid;

use super::{Client, MessageView};
use crate::error::{Error, Result};
use crate::history::{Cursor, Delivery, Direction, Entry};

impl<H: Home> Client<H> {
    /// Up to `n` messages with `peer` before `before` (the newest when `None`), oldest first.
    pub fn messages_before(&self, peer: &Username, before: Option<u64>, n: usize) -> Result<Vec<Entry>> {
        match before {
            Some(cursor) => self.store().messages_before(peer, Cursor::from_value(cursor), n),
            None => self.store().last_messages(peer, n),
        }
    }

    /// The user has seen everything in the chat with `peer` up to `cursor`. Never moves the mark back.
    pub fn mark_read(&self, peer: &Username, cursor: u64) -> Result<()> {
        self.store().update_contact(peer, |slot| {
            if let Some(contact) = slot.as_mut().filter(|c| c.read_up_to.is_none_or(|read| read < cursor)) {
                contact.read_up_to = Some(cursor);
            }
            Ok(())
        })
    }

    /// Deletes every message of the chat with `peer` from this computer; the contact, its pinned key and the
    /// session stay, so the chat goes on. Returns how many were deleted. Blocks on disk I/O.
    pub fn clear_chat(&self, peer: &Username) -> Result<usize> {
        let removed = self.store().clear_chat(peer)?;
        self.store().flush()?;
        Ok(removed)
    }

    /// Incoming messages from `peer` after the read mark, counted up to `cap` (a badge shows "99+").
    pub fn unread(&self, peer: &Username, cap: usize) -> Result<usize> {
        let read = self.store().contact(peer)?.and_then(|c| c.read_up_to);
        let after = self.store().messages_after(peer, read.map(Cursor::from_value), cap)?;
        Ok(after
            .iter()
            .filter(|entry| entry.message.direction == Direction::Incoming)
            .count())
    }

    /// Sends the text of a message the relay refused for good as a new message, and removes the failed one.
    pub fn retry_message(&self, peer: &Username, id: Uuid) -> Result<MessageView> {
        let entry = self
            .store()
            .get_message(id)?
            .filter(|entry| &entry.message.peer == peer)
            .ok_or_else(|| Error::NoMessage(id.to_string()))?;
        // A file's message holds its key, never to be sent as a text: a file is sent again by sending the file.
        let text = entry.message.kind == magpie_proto::MessageKind::Text;
        if !text || entry.message.direction != Direction::Outgoing || entry.message.delivery != Delivery::Failed {
            return Err(Error::NoMessage(id.to_string()));
        }
        let resent = self.send_text(peer, &entry.message.body)?;
        self.store().remove_message(id)?;
        Ok(resent)
    }
}
