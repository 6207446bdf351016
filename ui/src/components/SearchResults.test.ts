import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import SearchResults from './SearchResults.svelte';
import { MessageSearch } from '../lib/search.svelte';
import type { MessageItem, SearchChat, SearchHit } from '../lib/ipc';

type Args = Record<string, unknown>;

function hit(peer: string, cursor: number, before: string, matched: string, after: string): SearchHit {
  const message: MessageItem = {
    id: `${peer}-${cursor}`,
    peer,
    direction: cursor % 2 ? 'incoming' : 'outgoing',
    body: before + matched + after,
    sent_at: 1_790_000_000 + cursor,
    delivery: 'delivered',
    cursor,
    file: null,
  };
  return {
    message,
    snippet: [
      { text: before, matched: false },
      { text: matched, matched: true },
      { text: after, matched: false },
    ],
  };
}

/** Bob's chat has 3 matches, carol's 1; the backend streams them per chat, slowly when `gate` is given. */
function mockSearch(gate?: Promise<void>) {
  const calls: { cmd: string; args: Args }[] = [];
  mockIPC(async (cmd, args) => {
    const a = (args ?? {}) as Args;
    calls.push({ cmd, args: a });
    if (cmd === 'search') {
      const send = (a.results as { onmessage: (chat: SearchChat) => void }).onmessage;
      send({ peer: 'bob', total: 3, found: [hit('bob', 9, 'Lunch at the ', 'Café', '?'), hit('bob', 7, '', 'café', ' au lait')] });
      await gate;
      send({ peer: 'carol', total: 1, found: [hit('carol', 4, 'the ', 'café', ' is shut')] });
      return { total: 4, cancelled: false };
    }
    if (cmd === 'search_more') {
      return { peer: 'bob', total: 1, found: [hit('bob', 2, 'old ', 'café', '')] } satisfies SearchChat;
    }
    return null;
  });
  return calls;
}

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('SearchResults', () => {
  it('shows each chat as it arrives, with the matched words marked, and opens a result', async () => {
    let release = () => {};
    const calls = mockSearch(new Promise((resolve) => (release = resolve)));
    const search = new MessageSearch(0);
    const opened: [string, string][] = [];
    render(SearchResults, { search, onOpen: (peer: string, m: MessageItem) => opened.push([peer, m.id]) });

    void search.run('cafe');
    await waitFor(() => expect(screen.getAllByTestId('search-hit')).toHaveLength(2));
    expect(screen.getByTestId('search-status').textContent).toBe('Searching messages…');
    const marks = [...document.querySelectorAll('mark')].map((m) => m.textContent);
    expect(marks).toEqual(['Café', 'café']);
    expect(calls[0]!.args).toMatchObject({ query: 'cafe' });
    expect(calls[0]!.args).not.toHaveProperty('peer');

    release();
    await waitFor(() => expect(screen.getByTestId('search-status').textContent).toBe('4 messages found.'));
    expect(screen.getAllByTestId('search-hit')).toHaveLength(3);

    await fireEvent.click(screen.getAllByTestId('search-hit')[2]!);
    expect(opened).toEqual([['carol', 'carol-4']]);
  });

  it('loads older results of one chat on "Show more"', async () => {
    const calls = mockSearch();
    const search = new MessageSearch(0);
    render(SearchResults, { search, onOpen: () => {} });
    await search.run('cafe');
    const more = screen.getByTestId('search-more');
    expect(more.textContent).toContain('1 more of 1');
    await fireEvent.click(more);
    await waitFor(() => expect(screen.getAllByTestId('search-hit')).toHaveLength(4));
    expect(calls.at(-1)).toEqual({
      cmd: 'search_more',
      args: { query: 'cafe', peer: 'bob', before: 7, limit: 20 },
    });
    expect(screen.queryByTestId('search-more')).toBeNull();
  });

  it('asks for one page at a time however often "Show more" is clicked', async () => {
    const calls = mockSearch();
    const search = new MessageSearch(0);
    render(SearchResults, { search, onOpen: () => {} });
    await search.run('cafe');
    const more = screen.getByTestId('search-more');
    await Promise.all([fireEvent.click(more), fireEvent.click(more), search.more('bob')]);
    await waitFor(() => expect(screen.getAllByTestId('search-hit')).toHaveLength(4));
    expect(calls.filter((c) => c.cmd === 'search_more')).toHaveLength(1);
  });

  it('drops results of a search a newer one replaced, and says when nothing matched', async () => {
    let release = () => {};
    mockSearch(new Promise((resolve) => (release = resolve)));
    const search = new MessageSearch(0);
    render(SearchResults, { search, onOpen: () => {} });
    const first = search.run('cafe');
    await waitFor(() => expect(search.chats).toHaveLength(1));

    mockIPC(() => ({ total: 0, cancelled: false }));
    await search.run('nothing');
    release();
    await first;
    expect(search.chats).toHaveLength(0);
    expect(screen.getByTestId('search-status').textContent).toBe('No messages match “nothing”.');
  });
});

describe('MessageSearch', () => {
  it('waits for a pause in typing and clears at once on an empty query', async () => {
    const calls = mockSearch();
    const search = new MessageSearch(30);
    search.set('c');
    search.set('ca');
    search.set('caf');
    await waitFor(() => expect(search.total).toBe(4));
    expect(calls.filter((c) => c.cmd === 'search').map((c) => c.args.query)).toEqual(['caf']);
    search.set('   ');
    expect(search.chats).toEqual([]);
    expect(search.total).toBeNull();
  });
});
