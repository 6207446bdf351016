//! Reading every message out, chat by chat and oldest first within a chat, for a backup.

use super::blocks::{slots, BLOCK_KEY_LEN};
use super::messages::decode;
use super::{Entry, History, MESSAGE_BLOCKS};
use crate::error::Result;

impl History {
    /// How many message blocks the history holds: a backup's measure of progress (keys only, nothing opened).
    pub fn message_block_count(&self) -> Result<u64> {
        let mut count = 0;
        for key in self.blocks.iter().keys() {
            if key?.len() == BLOCK_KEY_LEN {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Calls `each` with the messages of every block in turn: a chat's blocks together, oldest first. Messages
    /// written meanwhile may or may not be seen. Stops at the first error `each` returns.
    pub fn for_each_message_block(&self, mut each: impl FnMut(Vec<Entry>) -> Result<()>) -> Result<()> {
        for item in self.blocks.iter() {
            let (key, sealed) = item?;
            // The tree also holds each chat's pointer to its newest block, under the bare chat id.
            if key.len() != BLOCK_KEY_LEN {
                continue;
            }
            let block = self.sealer.open(MESSAGE_BLOCKS, &key, &sealed)?;
            let entries = slots(&block)?
                .iter()
                .map(|slot| decode(&block, slot))
                .collect::<Result<Vec<_>>>()?;
            each(entries)?;
        }
        Ok(())
    }
}
