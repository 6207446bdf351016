import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import ChatFind from './ChatFind.svelte';
import type { MessageItem, SearchChat } from '../lib/ipc';

type Args = Record<string, unknown>;

function found(cursor: number) {
  const message: MessageItem = {
    id: `m${cursor}`,
    peer: 'bob',
    direction: 'incoming',
    body: `lunch ${cursor}`,
    sent_at: 1_790_000_000 + cursor,
    delivery: 'received',
    cursor,
    file: null,
  };
  return { message, snippet: [{ text: message.body, matched: true }] };
}

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('ChatFind', () => {
  it('finds in one chat and steps through the matches, fetching older ones as it goes', async () => {
    const calls: { cmd: string; args: Args }[] = [];
    mockIPC((cmd, args) => {
      const a = (args ?? {}) as Args;
      calls.push({ cmd, args: a });
      if (cmd === 'search_more' && a.before === null) {
        return { peer: 'bob', total: 3, found: [found(30), found(20)] } satisfies SearchChat;
      }
      if (cmd === 'search_more') return { peer: 'bob', total: 1, found: [found(10)] } satisfies SearchChat;
      return null;
    });
    const shown: string[] = [];
    let closed = false;
    render(ChatFind, { peer: 'bob', onShow: (m: MessageItem) => shown.push(m.id), onClose: () => (closed = true) });

    const input = screen.getByTestId('chat-find-input');
    expect(document.activeElement).toBe(input);
    await fireEvent.input(input, { target: { value: 'LUN' } });
    await fireEvent.keyDown(input, { key: 'Enter' });
    await waitFor(() => expect(screen.getByTestId('chat-find-status').textContent).toBe('1 of 3'));
    expect(calls[0]).toEqual({ cmd: 'search_more', args: { query: 'LUN', peer: 'bob', before: null, limit: 50 } });
    expect(shown).toEqual(['m30']);

    await fireEvent.keyDown(input, { key: 'Enter' });
    await fireEvent.keyDown(input, { key: 'Enter' });
    await waitFor(() => expect(screen.getByTestId('chat-find-status').textContent).toBe('3 of 3'));
    expect(calls.at(-1)).toEqual({ cmd: 'search_more', args: { query: 'LUN', peer: 'bob', before: 20, limit: 50 } });
    await fireEvent.keyDown(input, { key: 'Enter', shiftKey: true });
    expect(shown).toEqual(['m30', 'm20', 'm10', 'm20']);

    await fireEvent.keyDown(input, { key: 'Escape' });
    expect(closed).toBe(true);
  });

  it('says when nothing matches', async () => {
    mockIPC(() => ({ peer: 'bob', total: 0, found: [] }) satisfies SearchChat);
    render(ChatFind, { peer: 'bob', onShow: () => {}, onClose: () => {} });
    const input = screen.getByTestId('chat-find-input');
    await fireEvent.input(input, { target: { value: 'zebra' } });
    await waitFor(() => expect(screen.getByTestId('chat-find-status').textContent).toBe('No matches'));
  });
});
