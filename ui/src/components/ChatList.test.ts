import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import ChatList from './ChatList.svelte';
import type { ChatSummary, MessageItem } from '../lib/ipc';

const NOW = Date.now() / 1000;

function last(direction: MessageItem['direction'], body: string): MessageItem {
  return {
    id: 'x',
    peer: 'p',
    direction,
    body,
    sent_at: NOW - 60,
    delivery: direction === 'incoming' ? 'received' : 'delivered',
    cursor: 1,
    file: null,
  };
}

function chat(peer: string, overrides: Partial<ChatSummary> = {}): ChatSummary {
  return {
    peer,
    verified: false,
    key_changed: false,
    new_fingerprint: null,
    has_session: true,
    session_coming: false,
    discarded: null,
    last_message: null,
    unread: 0,
    last_activity: NOW - 60,
    ...overrides,
  };
}

const chats = [
  chat('alice', { last_message: last('incoming', 'see you at 5?'), unread: 3, verified: true }),
  chat('bob', { last_message: last('outgoing', 'on my way '.repeat(20)), key_changed: true }),
  chat('carol', { has_session: false, last_activity: null }),
];

afterEach(() => cleanup());

describe('ChatList', () => {
  it('shows name, preview, unread count and security state of each chat', () => {
    render(ChatList, { chats, selected: 'bob', onSelect: () => {} });
    const alice = screen.getByTestId('chat-row-alice');
    expect(alice.textContent).toContain('see you at 5?');
    expect(screen.getByTestId('unread-alice').getAttribute('aria-label')).toBe('3 unread');
    expect(alice.textContent).toContain('Verified');

    const bob = screen.getByTestId('chat-row-bob');
    expect(bob.textContent).toContain('You: on my way');
    expect(bob.textContent).toContain('…');
    expect(bob.textContent).toContain('Key changed');
    expect(bob.getAttribute('aria-current')).toBe('true');
    expect(screen.queryByTestId('unread-bob')).toBeNull();

    expect(screen.getByTestId('chat-row-carol').textContent).toContain('Setting up keys…');
  });

  it('opens a chat on click and moves between rows with the arrow keys', async () => {
    const opened: string[] = [];
    render(ChatList, { chats, selected: null, onSelect: (peer) => opened.push(peer) });
    const alice = screen.getByTestId('chat-row-alice');
    await fireEvent.click(alice);
    expect(opened).toEqual(['alice']);

    alice.focus();
    await fireEvent.keyDown(alice, { key: 'ArrowDown' });
    expect(document.activeElement).toBe(screen.getByTestId('chat-row-bob'));
    await fireEvent.keyDown(document.activeElement!, { key: 'End' });
    expect(document.activeElement).toBe(screen.getByTestId('chat-row-carol'));
    await fireEvent.keyDown(document.activeElement!, { key: 'ArrowDown' });
    expect(document.activeElement).toBe(screen.getByTestId('chat-row-carol'));
    await fireEvent.keyDown(document.activeElement!, { key: 'ArrowUp' });
    expect(document.activeElement).toBe(screen.getByTestId('chat-row-bob'));
  });

  it('explains how to start when there are no chats', () => {
    render(ChatList, { chats: [], selected: null, onSelect: () => {} });
    expect(screen.getByText(/No chats yet/)).toBeTruthy();
  });
});
