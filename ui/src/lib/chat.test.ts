import { describe, expect, it } from 'vitest';
import {
  buildRows,
  captureAnchor,
  chunk,
  computeOffsets,
  dayKey,
  dayLabel,
  daysAgo,
  fingerprintGroups,
  formatListTime,
  isAtBottom,
  maxScroll,
  mergeMessages,
  messagePreview,
  rekeysAfter,
  restoreAnchor,
  rowAt,
  truncate,
  windowRange,
} from './chat';
import type { MessageItem } from './ipc';

/** Unix seconds of a local date and time. */
function at(year: number, month: number, day: number, hour = 12, minute = 0): number {
  return new Date(year, month - 1, day, hour, minute).getTime() / 1000;
}

function message(id: string, sentAt: number, overrides: Partial<MessageItem> = {}): MessageItem {
  return {
    id,
    peer: 'alice',
    direction: 'incoming',
    body: `text ${id}`,
    sent_at: sentAt,
    delivery: 'received',
    cursor: Number(id.replace(/\D/g, '')) || 0,
    file: null,
    ...overrides,
  };
}

const now = new Date(2026, 10, 26, 15, 30); // 26 November 2026, 15:30 local

describe('days', () => {
  it('labels today, yesterday and older dates', () => {
    expect(dayLabel(at(2026, 11, 26, 0, 5), now)).toBe('Today');
    expect(dayLabel(at(2026, 11, 25, 23, 59), now)).toBe('Yesterday');
    const older = dayLabel(at(2026, 11, 20), now);
    expect(older).not.toMatch(/Today|Yesterday/);
    expect(older).not.toMatch(/2026/);
    expect(dayLabel(at(2025, 3, 3), now)).toMatch(/2025/);
  });

  it('counts calendar days, not 24-hour spans', () => {
    expect(daysAgo(at(2026, 11, 25, 23, 59), new Date(2026, 10, 26, 0, 1))).toBe(1);
    expect(daysAgo(at(2026, 11, 26, 0, 0), new Date(2026, 10, 26, 23, 59))).toBe(0);
    expect(dayKey(at(2026, 1, 5))).toBe('2026-01-05');
  });

  it('shows the time for today and a day name or date for older chats in the list', () => {
    expect(formatListTime(at(2026, 11, 26, 9, 5), now)).toMatch(/09|9/);
    expect(formatListTime(at(2026, 11, 25), now)).toBe('Yesterday');
    expect(formatListTime(at(2024, 1, 2), now)).toMatch(/2024/);
  });
});

describe('rows', () => {
  it('puts a day divider before the first message of each day', () => {
    const rows = buildRows(
      [
        message('1', at(2026, 11, 24, 10)),
        message('2', at(2026, 11, 24, 11)),
        message('3', at(2026, 11, 25, 9)),
        message('4', at(2026, 11, 26, 8)),
        message('5', at(2026, 11, 26, 9)),
      ],
      [],
      now,
    );
    expect(rows.map((r) => (r.kind === 'day' ? r.label : r.kind === 'message' ? r.message.id : 'rekey'))).toEqual([
      expect.any(String),
      '1',
      '2',
      'Yesterday',
      '3',
      'Today',
      '4',
      '5',
    ]);
    expect(rows[0]).toMatchObject({ kind: 'day', key: 'day:2026-11-24' });
    expect(new Set(rows.map((r) => r.key)).size).toBe(rows.length);
  });

  it('places "new session keys" dividers after the message they followed', () => {
    const rows = buildRows([message('1', at(2026, 11, 26, 8)), message('2', at(2026, 11, 26, 9))], ['1', ''], now);
    expect(rows.map((r) => r.key)).toEqual(['rekey:', 'day:2026-11-26', 'm:1', 'rekey:1', 'm:2']);
  });

  it('maps re-key positions to the loaded message each follows', () => {
    const loaded = [message('10', 10), message('20', 20), message('30', 30)];
    // Between 10 and 20, between 20 and 30, after 30.
    expect(rekeysAfter(loaded, [15, 25, 31], true)).toEqual(['10', '20', '30']);
    // Older than everything loaded: unknown while older messages are unloaded, before all once none are.
    expect(rekeysAfter(loaded, [5], true)).toEqual([]);
    expect(rekeysAfter(loaded, [5], false)).toEqual(['']);
    // A message still sending has no cursor and follows nothing.
    expect(rekeysAfter([...loaded, message('x', 40, { cursor: null })], [50], true)).toEqual(['30']);
  });

  it('merges messages by id and keeps them in cursor order', () => {
    const a = message('1', 1);
    const b = message('2', 2);
    const c = message('3', 3);
    const merged = mergeMessages([a, c], [b, { ...c, delivery: 'delivered' }]);
    expect(merged.map((m) => m.id)).toEqual(['1', '2', '3']);
    expect(merged[2]?.delivery).toBe('delivered');
    const pending = message('9', 9, { cursor: null });
    expect(mergeMessages([pending], [a]).map((m) => m.id)).toEqual(['1', '9']);
  });
});

describe('text', () => {
  it('previews the last message on one line, with "You: " for our own', () => {
    expect(messagePreview(message('1', 1, { body: 'hi\n  there' }))).toBe('hi there');
    expect(messagePreview(message('1', 1, { direction: 'outgoing', body: 'ok' }))).toBe('You: ok');
    const long = messagePreview(message('1', 1, { body: 'x'.repeat(200) }), 40);
    expect(Array.from(long)).toHaveLength(40);
    expect(long.endsWith('…')).toBe(true);
    expect(messagePreview(null)).toBe('');
  });

  it('truncates by characters, not UTF-16 units', () => {
    expect(truncate('🙂🙂🙂🙂', 3)).toBe('🙂🙂…');
  });

  it('groups fingerprints and safety numbers', () => {
    expect(fingerprintGroups('AB12CD34EF567890aabbccdd')).toEqual(['ab12', 'cd34', 'ef56', '7890']);
    expect(fingerprintGroups('ab12')).toEqual(['ab12']);
    expect(chunk(['1', '2', '3', '4', '5'], 2)).toEqual([['1', '2'], ['3', '4'], ['5']]);
    expect(chunk(Array.from({ length: 12 }, (_, i) => i), 4)).toHaveLength(3);
  });
});

describe('windowing', () => {
  // Heights vary like wrapped messages do: 40, 100, 60, 40, 100, 60, …
  const pattern = [40, 100, 60];
  const heightOf = (i: number) => pattern[i % 3]!;

  it('sums variable heights into offsets', () => {
    const offsets = computeOffsets(5, heightOf);
    expect([...offsets]).toEqual([0, 40, 140, 200, 240, 340]);
  });

  it('finds the row at a position by binary search', () => {
    const offsets = computeOffsets(5, heightOf);
    expect(rowAt(offsets, 0)).toBe(0);
    expect(rowAt(offsets, 39.9)).toBe(0);
    expect(rowAt(offsets, 40)).toBe(1);
    expect(rowAt(offsets, 139)).toBe(1);
    expect(rowAt(offsets, 10_000)).toBe(4);
    expect(rowAt(computeOffsets(0, heightOf), 50)).toBe(0);
  });

  it('renders only the rows in view plus overscan, even for a huge list', () => {
    const count = 1_000_000;
    const offsets = computeOffsets(count, heightOf);
    expect(offsets[count]).toBe(Math.floor(count / 3) * 200 + 40); // 333,333 full patterns and one 40 px row
    const scrollTop = 200 * 1000; // row 3000 starts here
    const range = windowRange(offsets, scrollTop, 300, 5);
    expect(range.firstVisible).toBe(3000);
    // 300 px from row 3000: 40 + 100 + 60 + 40 + 60 (part of the 100) → rows 3000..3004.
    expect(range.lastVisible).toBe(3004);
    expect(range.start).toBe(2995);
    expect(range.end).toBe(3010);
  });

  it('clamps the window at both ends and handles an empty list', () => {
    const offsets = computeOffsets(10, () => 50);
    expect(windowRange(offsets, 0, 120, 3)).toEqual({ start: 0, end: 6, firstVisible: 0, lastVisible: 2 });
    const bottom = maxScroll(offsets, 120);
    expect(bottom).toBe(380);
    expect(windowRange(offsets, bottom, 120, 3)).toEqual({ start: 4, end: 10, firstVisible: 7, lastVisible: 9 });
    expect(windowRange(computeOffsets(0, () => 50), 0, 120, 3)).toEqual({
      start: 0,
      end: 0,
      firstVisible: -1,
      lastVisible: -1,
    });
    expect(maxScroll(offsets, 1000)).toBe(0);
  });

  it('knows when the viewport is at the bottom', () => {
    const offsets = computeOffsets(10, () => 50);
    expect(isAtBottom(offsets, 380, 120)).toBe(true);
    expect(isAtBottom(offsets, 360, 120)).toBe(true);
    expect(isAtBottom(offsets, 200, 120)).toBe(false);
  });

  it('keeps the same message in view when older rows are prepended', () => {
    const keys = ['m:10', 'm:11', 'm:12', 'm:13'];
    const offsets = computeOffsets(keys.length, () => 50);
    const anchor = captureAnchor(offsets, keys, 70, () => true);
    expect(anchor).toEqual({ key: 'm:11', delta: 20 });

    const grown = ['m:7', 'm:8', 'm:9', ...keys];
    const newOffsets = computeOffsets(grown.length, (i) => (i < 3 ? 80 : 50));
    expect(restoreAnchor(newOffsets, grown, anchor)).toBe(240 + 50 + 20);
  });

  it('keeps the view steady when a row above it is measured taller', () => {
    const keys = ['day:1', 'm:1', 'm:2', 'm:3'];
    const before = computeOffsets(4, () => 50);
    // Skip the day divider: it moves when older messages of the same day arrive.
    const anchor = captureAnchor(before, keys, 10, (i) => keys[i]!.startsWith('m:'));
    expect(anchor).toEqual({ key: 'm:1', delta: -40 });
    const after = computeOffsets(4, (i) => (i === 0 ? 70 : 50)); // the divider above was 20 px taller
    expect(restoreAnchor(after, keys, anchor)).toBe(30);
    expect(restoreAnchor(after, keys, { key: 'gone', delta: 0 })).toBeNull();
    expect(restoreAnchor(after, keys, null)).toBeNull();
  });
});
