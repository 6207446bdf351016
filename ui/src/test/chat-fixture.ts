// The chat with bob and the messages sent in it that the component tests build, so each test states only
// what it changes.
import type { ChatSummary, MessageItem } from '../lib/ipc';

/** A chat with bob that is ready to send in: keys set up, not verified, no history yet. */
export function chat(overrides: Partial<ChatSummary> = {}): ChatSummary {
  return {
    peer: 'bob',
    verified: false,
    key_changed: false,
    new_fingerprint: null,
    has_session: true,
    session_coming: false,
    discarded: null,
    last_message: null,
    unread: 0,
    last_activity: null,
    ...overrides,
  };
}

/** What the backend answers to `send_message`: the stored message, still on its way. */
export function sentMessage(peer: string, body: string, overrides: Partial<MessageItem> = {}): MessageItem {
  return {
    id: 'new1',
    peer,
    direction: 'outgoing',
    body,
    sent_at: 1_790_000_000,
    delivery: 'sending',
    file: null,
    cursor: 1,
    ...overrides,
  };
}
