// Pure helpers for the conversation screens: dates, previews, fingerprints and the message list's windowing.
// Nothing here touches the DOM or the backend, so all of it is unit-tested directly.
import type { DiscardedView, MessageItem } from './ipc';

// --- dates and times ---

const DAY_MS = 24 * 60 * 60 * 1000;

/** A local calendar day as "YYYY-MM-DD" (Unix seconds in). */
export function dayKey(seconds: number): string {
  const d = new Date(seconds * 1000);
  const mm = String(d.getMonth() + 1).padStart(2, '0');
  const dd = String(d.getDate()).padStart(2, '0');
  return `${d.getFullYear()}-${mm}-${dd}`;
}

function startOfDay(d: Date): number {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

/** Whole local calendar days between `seconds` and `now` (0 = same day, 1 = yesterday; negative = future). */
export function daysAgo(seconds: number, now: Date = new Date()): number {
  return Math.round((startOfDay(now) - startOfDay(new Date(seconds * 1000))) / DAY_MS);
}

/** The label of a day divider: "Today", "Yesterday", or a date ("Monday, 3 March", with the year if not this one). */
export function dayLabel(seconds: number, now: Date = new Date()): string {
  const ago = daysAgo(seconds, now);
  if (ago === 0) return 'Today';
  if (ago === 1) return 'Yesterday';
  const d = new Date(seconds * 1000);
  const options: Intl.DateTimeFormatOptions = { weekday: 'long', day: 'numeric', month: 'long' };
  if (d.getFullYear() !== now.getFullYear()) options.year = 'numeric';
  return d.toLocaleDateString(undefined, options);
}

/** The time under a bubble: "14:05" (or "2:05 PM", as the system formats it). */
export function formatTime(seconds: number): string {
  return new Date(seconds * 1000).toLocaleTimeString(undefined, { hour: 'numeric', minute: '2-digit' });
}

/** The time in the chat list: the time today, "Yesterday", the weekday within a week, else a short date. */
export function formatListTime(seconds: number, now: Date = new Date()): string {
  const ago = daysAgo(seconds, now);
  if (ago <= 0) return formatTime(seconds);
  if (ago === 1) return 'Yesterday';
  const d = new Date(seconds * 1000);
  if (ago < 7) return d.toLocaleDateString(undefined, { weekday: 'short' });
  if (d.getFullYear() === now.getFullYear()) return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
  return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
}

/** A full date and time for tooltips. */
export function formatFull(seconds: number): string {
  return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'short' });
}

// --- text ---

/** One line of at most `max` characters (whitespace collapsed, "…" when cut). */
export function truncate(text: string, max: number): string {
  const line = text.replace(/\s+/g, ' ').trim();
  const chars = Array.from(line);
  if (chars.length <= max) return line;
  return chars.slice(0, Math.max(0, max - 1)).join('').trimEnd() + '…';
}

/** The chat list's preview of the last message: "You: " before our own. */
export function messagePreview(message: MessageItem | null, max = 60): string {
  if (!message) return '';
  const prefix = message.direction === 'outgoing' ? 'You: ' : '';
  const file = message.file;
  const text = file ? `${file.media_type.startsWith('image/') ? 'Photo' : 'File'}: ${file.name}` : message.body;
  return prefix + truncate(text, max - prefix.length);
}

/** The chat's security notice: what was discarded from `peer` because it did not verify, counted, never shown. */
export function discardedText(peer: string, discarded: DiscardedView): string {
  const { messages, steps } = discarded;
  const parts: string[] = [];
  if (messages > 0) parts.push(messages === 1 ? 'A message' : `${messages} messages`);
  if (steps > 0) {
    const one = parts.length === 0 ? 'A key exchange step' : 'a key exchange step';
    parts.push(steps === 1 ? one : `${steps} key exchange steps`);
  }
  if (parts.length === 0) return '';
  const plural = messages + steps > 1;
  return `${parts.join(' and ')} from ${peer} could not be verified and ${plural ? 'were' : 'was'} discarded.`;
}

/** Hex split into groups ("ab12 cd34 …"): the first `count` groups of `size` digits. */
export function fingerprintGroups(hex: string, count = 4, size = 4): string[] {
  const clean = hex.replace(/[^0-9a-f]/gi, '').toLowerCase();
  const groups: string[] = [];
  for (let i = 0; i < count && i * size < clean.length; i++) groups.push(clean.slice(i * size, (i + 1) * size));
  return groups;
}

/** Safety-number groups as rows for a grid (12 groups → 3 rows of 4). */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const rows: T[][] = [];
  for (let i = 0; i < items.length; i += size) rows.push(items.slice(i, i + size));
  return rows;
}

// --- the rows of a conversation ---

export type Row =
  | { kind: 'day'; key: string; label: string }
  | { kind: 'rekey'; key: string }
  | { kind: 'message'; key: string; message: MessageItem };

/** Key of a message's row (rows are measured and anchored by key). */
export function messageKey(id: string): string {
  return `m:${id}`;
}

/**
 * Messages (oldest first) with a day divider before the first message of each day and a
 * "new session keys" divider after each message id in `rekeyAfter` (`''` means before everything).
 */
export function buildRows(
  messages: readonly MessageItem[],
  rekeyAfter: readonly string[] = [],
  now: Date = new Date(),
): Row[] {
  const rows: Row[] = [];
  const rekeys = new Set(rekeyAfter);
  if (rekeys.has('')) rows.push({ kind: 'rekey', key: 'rekey:' });
  let lastDay = '';
  for (const message of messages) {
    const day = dayKey(message.sent_at);
    if (day !== lastDay) {
      rows.push({ kind: 'day', key: `day:${day}`, label: dayLabel(message.sent_at, now) });
      lastDay = day;
    }
    rows.push({ kind: 'message', key: messageKey(message.id), message });
    if (rekeys.has(message.id)) rows.push({ kind: 'rekey', key: `rekey:${message.id}` });
  }
  return rows;
}

/**
 * For `buildRows`: the id of the message each re-key position (ascending) follows, i.e. the newest loaded message with a smaller
 * cursor; `''` when it comes before every message. A position older than the loaded messages while older ones are
 * still unloaded, or newer while newer ones are, is left out until they load.
 */
export function rekeysAfter(
  messages: readonly MessageItem[],
  positions: readonly number[],
  hasMore: boolean,
  hasNewer = false,
): string[] {
  // One pass: positions ascend, and messages are in cursor order (unsent ones, without a cursor, last).
  const after: string[] = [];
  let next = 0;
  let before: MessageItem | undefined;
  for (const position of positions) {
    while (next < messages.length) {
      const m = messages[next]!;
      if (m.cursor === null || m.cursor >= position) break;
      before = m;
      next++;
    }
    // Past the newest loaded message while newer ones are not loaded: its place is not known yet.
    if (hasNewer && next === messages.length) break;
    if (before) after.push(before.id);
    else if (!hasMore) after.push('');
  }
  return after;
}

/** Adds messages to a list, oldest first, replacing ones with the same id (the list stays sorted by cursor/time). */
export function mergeMessages(existing: readonly MessageItem[], incoming: readonly MessageItem[]): MessageItem[] {
  if (incoming.length === 0) return existing.slice();
  const byId = new Map(existing.map((m) => [m.id, m] as const));
  for (const m of incoming) byId.set(m.id, m);
  const order = (m: MessageItem) => m.cursor ?? Number.POSITIVE_INFINITY;
  return [...byId.values()].sort((a, b) => order(a) - order(b) || a.sent_at - b.sent_at);
}

// --- windowing (the message list renders only the rows in view) ---

/** Prefix sums of row heights: offsets[i] is the top of row i, offsets[n] the total height. */
export function computeOffsets(count: number, heightOf: (index: number) => number): Float64Array {
  const offsets = new Float64Array(count + 1);
  for (let i = 0; i < count; i++) offsets[i + 1] = offsets[i]! + heightOf(i);
  return offsets;
}

/** The row at vertical position `y` (clamped to the rows that exist; 0 when there are none). */
export function rowAt(offsets: Float64Array, y: number): number {
  const count = offsets.length - 1;
  if (count <= 0) return 0;
  let lo = 0;
  let hi = count - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (offsets[mid]! <= y) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export interface WindowRange {
  /** First row rendered (inclusive). */
  start: number;
  /** Row after the last one rendered (exclusive). */
  end: number;
  /** First and last row actually inside the viewport (inclusive); -1 when empty. */
  firstVisible: number;
  lastVisible: number;
}

/** Which rows to render for a viewport at `scrollTop`, plus `overscan` rows either side. */
export function windowRange(
  offsets: Float64Array,
  scrollTop: number,
  viewportHeight: number,
  overscan: number,
): WindowRange {
  const count = offsets.length - 1;
  if (count <= 0) return { start: 0, end: 0, firstVisible: -1, lastVisible: -1 };
  const firstVisible = rowAt(offsets, Math.max(0, scrollTop));
  const bottom = Math.max(scrollTop, scrollTop + viewportHeight - 0.5);
  const lastVisible = Math.max(firstVisible, rowAt(offsets, bottom));
  return {
    start: Math.max(0, firstVisible - overscan),
    end: Math.min(count, lastVisible + 1 + overscan),
    firstVisible,
    lastVisible,
  };
}

/** The largest scrollTop (the list scrolled to the bottom). */
export function maxScroll(offsets: Float64Array, viewportHeight: number): number {
  return Math.max(0, offsets[offsets.length - 1]! - viewportHeight);
}

/** Whether the viewport shows the end of the list (within `slack` pixels). */
export function isAtBottom(offsets: Float64Array, scrollTop: number, viewportHeight: number, slack = 32): boolean {
  return scrollTop >= maxScroll(offsets, viewportHeight) - slack;
}

/** A row the viewport is pinned to while rows above it change, and how far into it the viewport starts. */
export interface Anchor {
  key: string;
  delta: number;
}

/**
 * The first row in view that `stable(index)` accepts (e.g. a message, not a day divider that moves when
 * older messages of the same day arrive), with the viewport's distance from its top.
 */
export function captureAnchor(
  offsets: Float64Array,
  keys: readonly string[],
  scrollTop: number,
  stable: (index: number) => boolean = () => true,
): Anchor | null {
  const count = offsets.length - 1;
  if (count <= 0) return null;
  for (let i = rowAt(offsets, scrollTop); i < count; i++) {
    if (stable(i)) return { key: keys[i]!, delta: scrollTop - offsets[i]! };
  }
  return null;
}

/** The scrollTop that keeps `anchor` where it was after rows were added or re-measured; null if it is gone. */
export function restoreAnchor(offsets: Float64Array, keys: readonly string[], anchor: Anchor | null): number | null {
  if (!anchor) return null;
  const index = keys.indexOf(anchor.key);
  if (index < 0) return null;
  return Math.max(0, offsets[index]! + anchor.delta);
}
