// The messages of one chat as its list shows them: read a page at a time from the newest back (or around a search
// result, then both ways), with the messages, delivery changes and re-keys that arrive live merged in. Every change to the rows goes through the view's
// `change`, which keeps the user's place.
import { tick } from 'svelte';
import { messages as loadPage, messagesAfter, messagesAround, retryMessage, type MessageItem } from './ipc';
import { describeError } from './errors';
import { buildRows, mergeMessages, rekeysAfter, type Row } from './chat';

export interface HistoryOptions {
  peer: () => string;
  /** Messages fetched per request. */
  pageSize: () => number;
  /** Applies a change to the rows, keeping the view in place (or at the bottom, with `toBottom`; held where it is
   *  even at the bottom, with `anchored`). */
  change: (apply: () => void, toBottom?: boolean, anchored?: boolean) => void;
  /** The view is near enough to the top to want the page before. */
  nearTop: () => boolean;
  /** The view is near enough to the bottom to want the page after (when opened at a search result). */
  nearBottom: () => boolean;
}

export class ChatHistory {
  items: MessageItem[] = $state.raw([]);
  hasMore = $state(false);
  /** Newer messages than the loaded ones exist (opened at a search result): live ones wait until scrolled to. */
  hasNewer = $state(false);
  loading = $state(false);
  loaded = $state(false);
  /** Why a page could not be read, as a sentence. */
  loadError = $state<string | null>(null);
  readonly rows: Row[] = $derived.by(() =>
    buildRows(this.items, [
      ...rekeysAfter(this.items, this.#rekeyPositions, this.hasMore, this.hasNewer),
      ...this.#liveRekeys,
    ]),
  );

  #options: HistoryOptions;
  /** Where the chat's re-keys fell, as positions among message cursors (kept by the backend). */
  #rekeyPositions: number[] = $state.raw([]);
  /** Re-keys seen live since the last page load: the id of the message each follows ('' = before all). */
  #liveRekeys: string[] = $state.raw([]);
  #destroyed = false;
  /** Bumped when the loaded window is replaced (opened at a result, or back to the newest). */
  #epoch = 0;
  /** Live messages that arrived while newer ones were not loaded (a search result's window): they join when the
   *  window reaches the chat's end, so none is lost to a page read just before it was stored. */
  #waiting: MessageItem[] = [];

  constructor(options: HistoryOptions) {
    this.#options = options;
  }

  async loadNewest() {
    const { peer, pageSize } = this.#options;
    this.loadError = null;
    const loaded = await this.#fetch(
      () => loadPage(peer(), null, pageSize()),
      (page) => {
        this.items = mergeMessages(this.items, page.messages);
        this.hasMore = page.has_more;
        this.#rekeyPositions = page.rekeys;
        this.loaded = true;
      },
      'bottom',
    );
    if (!loaded) return;
    await tick();
    void this.loadOlder();
  }

  /** Loads the messages around the one at `cursor` instead of the newest (a search result). */
  async loadAround(cursor: number) {
    const { peer, pageSize } = this.#options;
    this.#replaceWindow();
    await this.#fetch(
      () => messagesAround(peer(), cursor, pageSize() * 2),
      (page) => {
        this.items = page.messages;
        this.hasMore = page.has_more;
        this.hasNewer = page.has_newer;
        this.#rekeyPositions = page.rekeys;
        this.#liveRekeys = [];
        this.loaded = true;
      },
    );
  }

  /** Leaves a search result for the newest messages. */
  async jumpToNewest() {
    this.#replaceWindow();
    this.#options.change(() => {
      this.items = [];
      this.hasMore = false;
      this.hasNewer = false;
      this.#liveRekeys = [];
    }, true);
    await this.loadNewest();
  }

  /** Loads the page before the oldest loaded message when the view is near the top. */
  async loadOlder() {
    const { peer, pageSize, nearTop } = this.#options;
    if (!this.loaded || this.loading || !this.hasMore || this.#destroyed || !nearTop()) return;
    const before = this.items[0]?.cursor;
    if (before === null || before === undefined) {
      this.hasMore = false;
      return;
    }
    const loaded = await this.#fetch(
      () => loadPage(peer(), before, pageSize()),
      (page) => {
        const known = new Set(this.items.map((m) => m.id));
        const older = page.messages.filter((m) => !known.has(m.id));
        this.items = [...older, ...this.items];
        this.hasMore = page.has_more && older.length > 0;
        this.#rekeyPositions = page.rekeys;
      },
    );
    if (!loaded) return;
    await tick();
    void this.loadOlder();
  }

  /** Loads the page after the newest loaded message when newer ones exist and the view is near the bottom. */
  async loadNewer() {
    const { peer, pageSize, nearBottom } = this.#options;
    if (!this.loaded || this.loading || !this.hasNewer || this.#destroyed || !nearBottom()) return;
    const after = [...this.items].reverse().find((m) => m.cursor !== null)?.cursor;
    if (after === null || after === undefined) {
      this.hasNewer = false;
      return;
    }
    const loaded = await this.#fetch(
      () => messagesAfter(peer(), after, pageSize()),
      (page) => {
        this.hasNewer = page.has_newer && page.messages.length > 0;
        // At the chat's end: the live messages that waited meanwhile join (each once).
        const waited = this.hasNewer ? [] : this.#waiting;
        this.items = mergeMessages(this.items, [...page.messages, ...waited]);
        if (!this.hasNewer) this.#waiting = [];
        this.#rekeyPositions = page.rekeys;
      },
      'anchored',
    );
    if (!loaded) return;
    await tick();
    void this.loadNewer();
  }

  /** The loaded messages are about to be replaced: answers to requests made before are dropped. */
  #replaceWindow() {
    this.#epoch++;
    this.#waiting = [];
    this.loading = false;
    this.loadError = null;
  }

  /** Runs one page request and applies its answer, unless the list went away or its window was replaced
   *  meanwhile; true when applied. */
  async #fetch<T>(
    request: () => Promise<T>,
    apply: (page: T) => void,
    place: 'kept' | 'bottom' | 'anchored' = 'kept',
  ): Promise<boolean> {
    const epoch = this.#epoch;
    const current = () => !this.#destroyed && epoch === this.#epoch;
    this.loading = true;
    try {
      const page = await request();
      if (!current()) return false;
      this.#options.change(() => apply(page), place === 'bottom', place === 'anchored');
      return true;
    } catch (error) {
      if (current()) this.loadError = describeError(error);
      return false;
    } finally {
      if (epoch === this.#epoch) this.loading = false;
    }
  }

  /**
   * Adds or updates a message of this chat; true when it is new. Own new messages take the view to the bottom (to
   * the newest messages, when opened at a search result, where new incoming ones wait until scrolled to).
   */
  add(message: MessageItem): boolean {
    const index = this.items.findIndex((m) => m.id === message.id);
    if (index >= 0) {
      const next = this.items.slice();
      next[index] = message;
      this.items = next;
      return false;
    }
    if (this.hasNewer) {
      if (message.direction === 'outgoing') void this.jumpToNewest();
      else if (!this.#waiting.some((m) => m.id === message.id)) this.#waiting = [...this.#waiting, message];
      return message.direction === 'incoming';
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
    if (this.hasNewer) return; // The reloaded positions place it once the newest messages load.
    this.#options.change(() => {
      this.#liveRekeys = [...this.#liveRekeys, this.items.at(-1)?.id ?? ''];
    });
  }

  /** Sends a failed message again; rejects with a MagpieError. The new message is at the chat's end: away from a
   *  search result's window, the list goes there. */
  async retry(id: string) {
    const fresh = await retryMessage(this.#options.peer(), id);
    if (this.hasNewer) {
      await this.jumpToNewest();
      return;
    }
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
