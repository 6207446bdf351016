// The messages of one chat as its list shows them: read a page at a time from the newest back, with the messages,
// delivery changes and re-keys that arrive live merged in. Every change to the rows goes through the view's
// `change`, which keeps the user's place.
import { tick } from 'svelte';
import { messages as loadPage, retryMessage, type MessageItem } from './ipc';
import { describeError } from './errors';
import { buildRows, mergeMessages, rekeysAfter, type Row } from './chat';

export interface HistoryOptions {
  peer: () => string;
  /** Messages fetched per request. */
  pageSize: () => number;
  /** Applies a change to the rows, keeping the view in place (or at the bottom, with `toBottom`). */
  change: (apply: () => void, toBottom?: boolean) => void;
  /** The view is near enough to the top to want the page before. */
  nearTop: () => boolean;
}

export class ChatHistory {
  items: MessageItem[] = $state.raw([]);
  hasMore = $state(false);
  loading = $state(false);
  loaded = $state(false);
  /** Why a page could not be read, as a sentence. */
  loadError = $state<string | null>(null);
  readonly rows: Row[] = $derived.by(() =>
    buildRows(this.items, [...rekeysAfter(this.items, this.#rekeyPositions, this.hasMore), ...this.#liveRekeys]),
  );

  #options: HistoryOptions;
  /** Where the chat's re-keys fell, as positions among message cursors (kept by the backend). */
  #rekeyPositions: number[] = $state.raw([]);
  /** Re-keys seen live since the last page load: the id of the message each follows ('' = before all). */
  #liveRekeys: string[] = $state.raw([]);
  #destroyed = false;

  constructor(options: HistoryOptions) {
    this.#options = options;
  }

  async loadNewest() {
    const { peer, pageSize, change } = this.#options;
    this.loading = true;
    this.loadError = null;
    try {
      const page = await loadPage(peer(), null, pageSize());
      if (this.#destroyed) return;
      change(() => {
        this.items = mergeMessages(this.items, page.messages);
        this.hasMore = page.has_more;
        this.#rekeyPositions = page.rekeys;
      }, true);
      this.loaded = true;
    } catch (error) {
      if (!this.#destroyed) this.loadError = describeError(error);
    } finally {
      this.loading = false;
    }
    await tick();
    void this.loadOlder();
  }

  /** Loads the page before the oldest loaded message when the view is near the top. */
  async loadOlder() {
    const { peer, pageSize, change, nearTop } = this.#options;
    if (!this.loaded || this.loading || !this.hasMore || this.#destroyed) return;
    if (!nearTop()) return;
    const before = this.items[0]?.cursor;
    if (before === null || before === undefined) {
      this.hasMore = false;
      return;
    }
    this.loading = true;
    try {
      const page = await loadPage(peer(), before, pageSize());
      if (this.#destroyed) return;
      const known = new Set(this.items.map((m) => m.id));
      const older = page.messages.filter((m) => !known.has(m.id));
      change(() => {
        this.items = [...older, ...this.items];
        this.hasMore = page.has_more && older.length > 0;
        this.#rekeyPositions = page.rekeys;
      });
    } catch (error) {
      if (!this.#destroyed) this.loadError = describeError(error);
      return;
    } finally {
      this.loading = false;
    }
    await tick();
    void this.loadOlder();
  }

  /** Adds or updates a message of this chat; true when it is new. Own new messages take the view to the bottom. */
  add(message: MessageItem): boolean {
    const index = this.items.findIndex((m) => m.id === message.id);
    if (index >= 0) {
      const next = this.items.slice();
      next[index] = message;
      this.items = next;
      return false;
    }
    this.#options.change(() => {
      this.items = mergeMessages(this.items, [message]);
    }, message.direction === 'outgoing');
    return true;
  }

  setDelivery(id: string, delivery: MessageItem['delivery']) {
    this.items = this.items.map((m) => (m.id === id ? { ...m, delivery } : m));
  }

  /** The session was replaced by a new one: a divider after the newest message. */
  rekeyed() {
    this.#options.change(() => {
      this.#liveRekeys = [...this.#liveRekeys, this.items.at(-1)?.id ?? ''];
    });
  }

  /** Sends a failed message again; rejects with a MagpieError. */
  async retry(id: string) {
    const fresh = await retryMessage(this.#options.peer(), id);
    this.#options.change(() => {
      this.items = mergeMessages(
        this.items.filter((m) => m.id !== id),
        [fresh],
      );
    }, true);
  }

  destroy() {
    this.#destroyed = true;
  }
}
