// A message search as the sidebar shows it: started after a pause in typing, each chat's results added as the
// backend streams them, and "Show more" per chat. A newer search replaces the one before (the backend stops it).
import { search, searchMore, type SearchChat } from './ipc';
import { describeError } from './errors';

/** Results fetched per "Show more". */
const MORE = 20;

export class MessageSearch {
  /** The query whose results are shown. */
  query = $state('');
  chats: SearchChat[] = $state.raw([]);
  running = $state(false);
  /** Messages that matched in all, once the search finished. */
  total = $state<number | null>(null);
  error = $state<string | null>(null);

  #generation = 0;
  /** Chats whose "Show more" is under way. */
  #loadingMore = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #delay: number;

  constructor(delay = 150) {
    this.#delay = delay;
  }

  /** Searches for `query` once typing pauses; an empty query clears the results at once. */
  set(query: string): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (!query.trim()) {
      this.clear();
      return;
    }
    this.#timer = setTimeout(() => void this.run(query), this.#delay);
  }

  async run(query: string): Promise<void> {
    const generation = ++this.#generation;
    this.query = query;
    this.chats = [];
    this.total = null;
    this.error = null;
    this.running = true;
    try {
      const summary = await search(query, (chat) => {
        if (generation === this.#generation) this.chats = [...this.chats, chat];
      });
      if (generation === this.#generation && !summary.cancelled) this.total = summary.total;
    } catch (error) {
      if (generation === this.#generation) this.error = describeError(error);
    } finally {
      if (generation === this.#generation) this.running = false;
    }
  }

  /** Loads the next results of one chat (once at a time per chat). */
  async more(peer: string): Promise<void> {
    const chat = this.chats.find((c) => c.peer === peer);
    const before = chat?.found.at(-1)?.message.cursor;
    if (!chat || before === null || before === undefined || this.#loadingMore.has(peer)) return;
    const generation = this.#generation;
    this.#loadingMore.add(peer);
    try {
      const next = await searchMore(this.query, peer, before, MORE);
      if (generation !== this.#generation) return;
      this.chats = this.chats.map((c) => {
        if (c.peer !== peer) return c;
        const shown = new Set(c.found.map((hit) => hit.message.id));
        return { ...c, found: [...c.found, ...next.found.filter((hit) => !shown.has(hit.message.id))] };
      });
    } catch (error) {
      if (generation === this.#generation) this.error = describeError(error);
    } finally {
      this.#loadingMore.delete(peer);
    }
  }

  clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#generation++;
    this.query = '';
    this.chats = [];
    this.total = null;
    this.error = null;
    this.running = false;
  }
}
