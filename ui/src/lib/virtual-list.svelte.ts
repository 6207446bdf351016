// The scrolling of a long list of rows of varying height: only the rows near the viewport are rendered, each
// rendered row's real height is measured, and a change to the rows keeps what the user looks at in place, or keeps
// the view at the bottom when it was there (as a chat does).
import { tick } from 'svelte';
import { captureAnchor, computeOffsets, isAtBottom, maxScroll, restoreAnchor, windowRange } from './chat';

export interface VirtualListOptions<R> {
  /** The rows, top first. */
  rows: () => readonly R[];
  /** Height assumed for a row until it has been measured (px). */
  estimate: (row: R) => number;
  /** Rows rendered beyond each edge of the viewport. */
  overscan: () => number;
  /** Fixes the viewport height instead of measuring it (jsdom has no layout). */
  viewportHeight: () => number | undefined;
  /** Rows that may hold the view in place when the rows change. */
  isAnchor: (row: R) => boolean;
}

export class VirtualList<R extends { key: string }> {
  /** The scrolling element (bound in the template). */
  scroller = $state<HTMLElement | undefined>();
  scrollTop = $state(0);
  /** The user is at the bottom: new rows keep the view at the bottom. */
  stick = true;

  readonly offsets: Float64Array = $derived.by(() => {
    void this.#heightsVersion;
    const rows = this.#options.rows();
    return computeOffsets(rows.length, (i) => {
      const row = rows[i]!;
      return this.#heights.get(row.key) ?? this.#options.estimate(row);
    });
  });
  readonly viewport: number = $derived.by(() => this.#options.viewportHeight() ?? this.#measuredViewport);
  readonly range = $derived.by(() =>
    windowRange(this.offsets, this.scrollTop, this.viewport, this.#options.overscan()),
  );
  readonly visibleRows: R[] = $derived.by(() => this.#options.rows().slice(this.range.start, this.range.end));
  readonly total: number = $derived.by(() => this.offsets[this.offsets.length - 1] ?? 0);

  #options: VirtualListOptions<R>;
  #keys: string[] = $derived.by(() => this.#options.rows().map((row) => row.key));
  #measuredViewport = $state(0);
  // Measured heights by row key; `#heightsVersion` makes the layout recompute when the map changes.
  #heights = new Map<string, number>();
  #heightsVersion = $state(0);
  /** A scrollTop chosen in code that the element has not been given yet (it waits for the DOM update). */
  #pendingScroll: number | null = null;
  #destroyed = false;
  #rowKeys = new WeakMap<Element, string>();
  #rowObserver =
    typeof ResizeObserver === 'undefined'
      ? null
      : new ResizeObserver((entries) => {
          const updates: [string, number][] = [];
          for (const entry of entries) {
            const key = this.#rowKeys.get(entry.target);
            const height = entry.borderBoxSize?.[0]?.blockSize ?? entry.target.getBoundingClientRect().height;
            if (key !== undefined) updates.push([key, height]);
          }
          this.#record(updates);
        });

  constructor(options: VirtualListOptions<R>) {
    this.#options = options;
  }

  setScroll(top: number) {
    this.scrollTop = top;
    this.#pendingScroll = top;
    void tick().then(() => {
      if (this.#pendingScroll === null) return;
      if (this.scroller) this.scroller.scrollTop = this.#pendingScroll;
      this.#pendingScroll = null;
    });
  }

  /**
   * Applies a change to the rows or their heights while keeping what the user looks at in place: at the bottom
   * when it was there (or `forceBottom`), unless `anchored` (rows added below a search result's window, where the
   * bottom is not the chat's end).
   */
  change(apply: () => void, forceBottom = false, anchored = false) {
    const atBottom = !anchored && (this.stick || forceBottom);
    const rows = this.#options.rows();
    const anchor = atBottom
      ? null
      : captureAnchor(this.offsets, this.#keys, this.scrollTop, (i) => {
          const row = rows[i];
          return row !== undefined && this.#options.isAnchor(row);
        });
    apply();
    if (atBottom) {
      this.stick = true;
      this.setScroll(maxScroll(this.offsets, this.viewport));
      return;
    }
    const target = restoreAnchor(this.offsets, this.#keys, anchor);
    if (target !== null && target !== this.scrollTop) this.setScroll(target);
  }

  /** Takes the position the user scrolled to; false while one chosen in code is still on its way. */
  syncScroll(): boolean {
    if (!this.scroller || this.#pendingScroll !== null) return false;
    this.scrollTop = this.scroller.scrollTop;
    this.stick = isAtBottom(this.offsets, this.scrollTop, this.viewport);
    return true;
  }

  /** Scrolls the row with `key` to a third of the way down the view; false when no row has that key. */
  scrollToKey(key: string): boolean {
    const index = this.#keys.indexOf(key);
    if (index < 0) return false;
    this.stick = false;
    const top = (this.offsets[index] ?? 0) - this.viewport / 3;
    this.setScroll(Math.max(0, Math.min(maxScroll(this.offsets, this.viewport), top)));
    return true;
  }

  scrollToBottom() {
    this.stick = true;
    this.setScroll(maxScroll(this.offsets, this.viewport));
  }

  /** Svelte action for each rendered row: a ResizeObserver reports its real height (wrapping text varies). */
  measure = (node: HTMLElement, key: string) => {
    this.#rowKeys.set(node, key);
    this.#rowObserver?.observe(node);
    return {
      update: (next: string) => {
        this.#rowKeys.set(node, next);
      },
      destroy: () => {
        this.#rowObserver?.unobserve(node);
      },
    };
  };

  /** Follows the scroller's height from now on; returns what stops it when the list goes away. */
  observeViewport(): () => void {
    const viewportObserver =
      typeof ResizeObserver === 'undefined'
        ? null
        : new ResizeObserver(() => {
            if (!this.scroller) return;
            const height = this.scroller.clientHeight;
            if (height !== this.#measuredViewport) this.change(() => (this.#measuredViewport = height));
          });
    if (this.scroller) {
      this.#measuredViewport = this.scroller.clientHeight;
      viewportObserver?.observe(this.scroller);
    }
    return () => {
      this.#destroyed = true;
      viewportObserver?.disconnect();
      this.#rowObserver?.disconnect();
    };
  }

  #record(updates: [string, number][]) {
    const changed = updates.filter(
      ([key, height]) => height > 0 && Math.abs((this.#heights.get(key) ?? -1) - height) >= 0.5,
    );
    if (changed.length === 0 || this.#destroyed) return;
    this.change(() => {
      for (const [key, height] of changed) this.#heights.set(key, height);
      this.#heightsVersion++;
    });
  }
}
