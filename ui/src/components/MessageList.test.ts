import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
import MessageList from './MessageList.svelte';
import type { MessageItem, MessagePage, UiEvent } from '../lib/ipc';

const TOTAL = 1_000_000;
const START = 1_790_000_000;

/** Message number `i` of a chat with alice: cursor i, alternating sides. */
function message(i: number, overrides: Partial<MessageItem> = {}): MessageItem {
  const incoming = i % 2 === 1;
  return {
    id: `m${i}`,
    peer: 'alice',
    direction: incoming ? 'incoming' : 'outgoing',
    body: `message number ${i}`,
    sent_at: START + i,
    delivery: incoming ? 'received' : 'delivered',
    cursor: i,
    file: null,
    ...overrides,
  };
}

type Args = Record<string, unknown>;

/** Mocks a chat of `total` messages; records every command. */
function mockChat(total: number, rekeys: number[] = []) {
  const calls: { cmd: string; args: Args }[] = [];
  mockIPC(
    (cmd, args) => {
      const a = (args ?? {}) as Args;
      calls.push({ cmd, args: a });
      if (cmd === 'messages') {
        const before = (a.before as number | null) ?? total;
        const start = Math.max(0, before - (a.limit as number));
        const messages: MessageItem[] = [];
        for (let i = start; i < before; i++) messages.push(message(i));
        return { messages, has_more: start > 0, has_newer: false, rekeys } satisfies MessagePage;
      }
      if (cmd === 'messages_around') {
        const cursor = a.cursor as number;
        const half = (a.limit as number) / 2;
        const start = Math.max(0, cursor + 1 - half);
        const end = Math.min(total, cursor + 1 + half);
        const messages: MessageItem[] = [];
        for (let i = start; i < end; i++) messages.push(message(i));
        return { messages, has_more: start > 0, has_newer: end < total, rekeys } satisfies MessagePage;
      }
      if (cmd === 'messages_after') {
        const start = (a.after as number) + 1;
        const end = Math.min(total, start + (a.limit as number));
        const messages: MessageItem[] = [];
        for (let i = start; i < end; i++) messages.push(message(i));
        return { messages, has_more: true, has_newer: end < total, rekeys } satisfies MessagePage;
      }
      if (cmd === 'retry_message') return message(total + 1, { delivery: 'sending', body: 'again', direction: 'outgoing' });
      return null;
    },
    { shouldMockEvents: true },
  );
  return calls;
}

function history(calls: { cmd: string }[]): string[] {
  return calls.map((c) => c.cmd);
}

function rowIds(): string[] {
  return screen.queryAllByTestId(/^message-m\d+$/).map((el) => el.dataset.testid!.slice('message-'.length));
}

async function send(event: UiEvent) {
  await emit('magpie://event', event);
}

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('MessageList', () => {
  it('opens a chat of 1,000,000 messages with one page and only a window of rows in the DOM', async () => {
    const calls = mockChat(TOTAL);
    render(MessageList, { peer: 'alice', viewportHeight: 600, estimatedRowHeight: 60 });

    await waitFor(() => expect(rowIds()).toContain(`m${TOTAL - 1}`));
    const pages = calls.filter((c) => c.cmd === 'messages');
    expect(pages).toHaveLength(1);
    expect(pages[0]!.args).toEqual({ peer: 'alice', before: null, limit: 50 });

    // 600 px of 60 px rows is 10 rows, plus overscan: far fewer than the 50 loaded, let alone a million.
    const shown = rowIds();
    expect(shown.length).toBeGreaterThan(5);
    expect(shown.length).toBeLessThan(30);
    expect(shown).not.toContain(`m${TOTAL - 50}`);
    expect(screen.getByTestId(`message-m${TOTAL - 1}`).textContent).toContain(`message number ${TOTAL - 1}`);
  });

  it('loads the previous page near the top and keeps the same messages in view', async () => {
    const calls = mockChat(TOTAL);
    render(MessageList, { peer: 'alice', viewportHeight: 600, estimatedRowHeight: 60 });
    await waitFor(() => expect(rowIds()).toContain(`m${TOTAL - 1}`));
    const list = screen.getByTestId('message-list');
    await waitFor(() => expect(list.scrollTop).toBeGreaterThan(1000));

    list.scrollTop = 0;
    await fireEvent.scroll(list);
    await waitFor(() => expect(calls.filter((c) => c.cmd === 'messages')).toHaveLength(2));
    expect(calls.filter((c) => c.cmd === 'messages')[1]!.args).toEqual({
      peer: 'alice',
      before: TOTAL - 50,
      limit: 50,
    });
    // 50 older rows (60 px each) were added above: the view moved down by as much, so it still shows the oldest
    // message of the first page rather than jumping to the new ones.
    await waitFor(() => expect(list.scrollTop).toBeGreaterThanOrEqual(50 * 60));
    expect(rowIds()).toContain(`m${TOTAL - 50}`);
    expect(rowIds().length).toBeLessThan(40);
  });

  it('fills a short viewport by loading older pages until there are none', async () => {
    const calls = mockChat(3);
    render(MessageList, { peer: 'alice', viewportHeight: 600, estimatedRowHeight: 60 });
    await waitFor(() => expect(rowIds()).toEqual(['m0', 'm1', 'm2']));
    expect(calls.filter((c) => c.cmd === 'messages')).toHaveLength(1);
  });

  it('shows own messages on the right with their delivery state and others on the left', async () => {
    mockChat(4);
    render(MessageList, { peer: 'alice', viewportHeight: 600 });
    const own = await screen.findByTestId('message-m2');
    expect(own.classList.contains('outgoing')).toBe(true);
    expect(own.querySelector('[data-testid="message-state"]')?.getAttribute('data-state')).toBe('delivered');
    expect(own.textContent).toContain('Delivered');
    const theirs = screen.getByTestId('message-m3');
    expect(theirs.classList.contains('incoming')).toBe(true);
    expect(theirs.querySelector('[data-testid="message-state"]')).toBeNull();
    expect(screen.getAllByRole('separator').length).toBeGreaterThan(0);
  });

  it('appends a bubble when a message event arrives, once, and marks it read', async () => {
    const calls = mockChat(2);
    render(MessageList, { peer: 'alice', viewportHeight: 600 });
    await waitFor(() => expect(rowIds()).toEqual(['m0', 'm1']));

    const fresh = message(7, { body: 'https://example.com is just text' });
    await send({ type: 'message', message: fresh });
    await send({ type: 'message', message: fresh });
    await send({ type: 'message', message: message(8, { peer: 'bob', id: 'other' }) });

    await waitFor(() => expect(rowIds()).toEqual(['m0', 'm1', 'm7']));
    const bubble = screen.getByTestId('message-m7').querySelector('[data-testid="message-body"]')!;
    expect(bubble.textContent).toBe('https://example.com is just text');
    expect(bubble.querySelector('a')).toBeNull();
    // Screen readers hear it once, from the log beside the (virtualized) list.
    const log = screen.getByTestId('message-log');
    expect(log.getAttribute('role')).toBe('log');
    expect([...log.querySelectorAll('p')].map((p) => p.textContent)).toEqual(['alice: https://example.com is just text']);
    await waitFor(() =>
      expect(calls.filter((c) => c.cmd === 'mark_read').at(-1)?.args).toEqual({ peer: 'alice', cursor: 7 }),
    );
  });

  it('follows delivery changes and retries a failed message', async () => {
    const calls = mockChat(0);
    render(MessageList, { peer: 'alice', viewportHeight: 600 });
    await screen.findByText(/No messages yet/);

    await send({ type: 'message', message: message(10, { delivery: 'sending' }) });
    const state = () => screen.getByTestId('message-m10').querySelector('[data-testid="message-state"]')!;
    await waitFor(() => expect(state().getAttribute('data-state')).toBe('sending'));

    await send({ type: 'delivery_changed', peer: 'alice', id: 'm10', delivery: 'sent' });
    await waitFor(() => expect(state().getAttribute('data-state')).toBe('sent'));

    await send({ type: 'delivery_changed', peer: 'alice', id: 'm10', delivery: 'failed' });
    const retry = await screen.findByRole('button', { name: 'Not sent — retry' });
    await fireEvent.click(retry);
    await waitFor(() => expect(rowIds()).toEqual(['m1']));
    expect(calls.find((c) => c.cmd === 'retry_message')?.args).toEqual({ peer: 'alice', id: 'm10' });
  });

  it('offers a jump to new messages that arrive while reading older ones', async () => {
    mockChat(TOTAL);
    render(MessageList, { peer: 'alice', viewportHeight: 600, estimatedRowHeight: 60 });
    await waitFor(() => expect(rowIds()).toContain(`m${TOTAL - 1}`));
    const list = screen.getByTestId('message-list');
    await waitFor(() => expect(list.scrollTop).toBeGreaterThan(1000));
    list.scrollTop = 1000; // reading further up, not near the top
    await fireEvent.scroll(list);

    await send({ type: 'message', message: message(TOTAL + 1) });
    const jump = await screen.findByTestId('jump-to-latest');
    expect(jump.textContent).toContain('1 new message');
    expect(list.scrollTop).toBe(1000);
    expect(rowIds()).not.toContain(`m${TOTAL + 1}`);

    await fireEvent.click(jump);
    await waitFor(() => expect(rowIds()).toContain(`m${TOTAL + 1}`));
    expect(screen.queryByTestId('jump-to-latest')).toBeNull();
  });

  it('opens at a search result, marks it, loads newer pages downwards and leaves for the latest', async () => {
    const calls = mockChat(TOTAL);
    const focus = { peer: 'alice', id: 'm500000', cursor: 500_000 };
    render(MessageList, { peer: 'alice', viewportHeight: 600, estimatedRowHeight: 60, focus });

    await waitFor(() => expect(rowIds()).toContain('m500000'));
    expect(calls.find((c) => c.cmd === 'messages_around')!.args).toEqual({ peer: 'alice', cursor: 500_000, limit: 100 });
    expect(calls.some((c) => c.cmd === 'messages')).toBe(false);
    expect(screen.getByTestId('message-m500000').getAttribute('aria-current')).toBe('true');
    const jump = screen.getByTestId('jump-to-latest');
    expect(jump.textContent).toContain('Latest messages');

    // A live incoming message waits (it is far below); the button counts it.
    await send({ type: 'message', message: message(TOTAL + 1) });
    await waitFor(() => expect(screen.getByTestId('jump-to-latest').textContent).toContain('1 new message'));
    expect(rowIds()).not.toContain(`m${TOTAL + 1}`);

    // Scrolling to the bottom of what is loaded fetches the next page after it.
    const list = screen.getByTestId('message-list');
    list.scrollTop = 1_000_000;
    await fireEvent.scroll(list);
    await waitFor(() => expect(calls.some((c) => c.cmd === 'messages_after')).toBe(true));
    expect(calls.find((c) => c.cmd === 'messages_after')!.args).toMatchObject({ peer: 'alice', after: 500_050 });

    await fireEvent.click(screen.getByTestId('jump-to-latest'));
    await waitFor(() => expect(rowIds()).toContain(`m${TOTAL - 1}`));
    expect(calls.filter((c) => c.cmd === 'messages')[0]!.args).toEqual({ peer: 'alice', before: null, limit: 50 });
    expect(screen.queryByTestId('jump-to-latest')).toBeNull();
  });

  it('keeps a live message that came while a result was shown, and shows it once the chat\'s end is loaded', async () => {
    const calls = mockChat(TOTAL);
    const focus = { peer: 'alice', id: `m${TOTAL - 60}`, cursor: TOTAL - 60 };
    render(MessageList, { peer: 'alice', viewportHeight: 600, estimatedRowHeight: 60, focus });
    await waitFor(() => expect(rowIds()).toContain(`m${TOTAL - 60}`));
    await send({ type: 'message', message: message(TOTAL + 1) });
    await waitFor(() => expect(screen.getByTestId('jump-to-latest').textContent).toContain('1 new message'));

    const list = screen.getByTestId('message-list');
    for (let i = 0; i < 5 && !rowIds().includes(`m${TOTAL + 1}`); i++) {
      list.scrollTop = 1_000_000;
      await fireEvent.scroll(list);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await waitFor(() => expect(history(calls)).toContain('messages_after'));
    await waitFor(() => {
      list.scrollTop = 1_000_000;
      void fireEvent.scroll(list);
      expect(rowIds()).toContain(`m${TOTAL + 1}`);
    });
    expect(rowIds().filter((id) => id === `m${TOTAL + 1}`)).toHaveLength(1);
  });

  it('shows a "new session keys" divider after a re-key', async () => {
    mockChat(2);
    render(MessageList, { peer: 'alice', viewportHeight: 600 });
    await waitFor(() => expect(rowIds()).toEqual(['m0', 'm1']));
    await send({ type: 'session_established', peer: 'alice', rekey: false });
    await send({ type: 'session_established', peer: 'alice', rekey: true });
    const divider = await screen.findByRole('separator', { name: 'New session keys' });
    expect(divider.textContent).toContain('New session keys');
    expect(screen.getAllByRole('separator', { name: 'New session keys' })).toHaveLength(1);
  });

  it('shows the re-keys the backend kept, between the messages they fell between', async () => {
    // Cursors are the message numbers: re-keys after messages 0, 1 and 2.
    mockChat(3, [0.5, 1.5, 2.5]);
    render(MessageList, { peer: 'alice', viewportHeight: 600 });
    await waitFor(() => expect(rowIds()).toEqual(['m0', 'm1', 'm2']));
    const order = [...document.querySelectorAll<HTMLElement>('[data-testid], [role="separator"]')]
      .map((el) => (el.getAttribute('aria-label') === 'New session keys' ? 'rekey' : (el.dataset.testid ?? '')))
      .filter((name) => name === 'rekey' || /^message-m\d+$/.test(name));
    expect(order).toEqual(['message-m0', 'rekey', 'message-m1', 'rekey', 'message-m2', 'rekey']);
    // The live event of the newest one, at the same place, adds no second divider.
    await send({ type: 'session_established', peer: 'alice', rekey: true });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(screen.getAllByRole('separator', { name: 'New session keys' })).toHaveLength(3);
  });

  it('explains a failed load in words', async () => {
    mockIPC(
      (cmd) => {
        if (cmd === 'messages') throw { code: 'internal', message: 'The history could not be read.' };
        return null;
      },
      { shouldMockEvents: true },
    );
    render(MessageList, { peer: 'alice', viewportHeight: 600 });
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('The history could not be read.');
    expect(alert.textContent).not.toContain('{');
  });
});
