import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import SecurityNotice from './SecurityNotice.svelte';
import { discardedText } from '../lib/chat';

afterEach(() => {
  cleanup();
  clearMocks();
});

const counts = (messages: number, steps: number) => ({ messages, steps, since: 1_790_000_000, last: 1_790_000_060 });

describe('discardedText', () => {
  it('counts what was discarded in words, never its content', () => {
    expect(discardedText('bob', counts(1, 0))).toBe('A message from bob could not be verified and was discarded.');
    expect(discardedText('bob', counts(3, 0))).toBe('3 messages from bob could not be verified and were discarded.');
    expect(discardedText('bob', counts(0, 1))).toBe(
      'A key exchange step from bob could not be verified and was discarded.',
    );
    expect(discardedText('bob', counts(2, 1))).toBe(
      '2 messages and a key exchange step from bob could not be verified and were discarded.',
    );
  });
});

describe('SecurityNotice', () => {
  it('shows the count as a status line and dismisses it through the backend', async () => {
    const calls: { cmd: string; args: unknown }[] = [];
    mockIPC((cmd, args) => {
      calls.push({ cmd, args });
      return null;
    });
    let changed = 0;
    let compared = 0;
    render(SecurityNotice, {
      peer: 'bob',
      discarded: counts(2, 0),
      onCompare: () => compared++,
      onChanged: () => changed++,
    });
    const notice = screen.getByTestId('security-notice');
    expect(notice.getAttribute('role')).toBe('status');
    expect(screen.getByTestId('security-notice-text').textContent).toBe(
      '2 messages from bob could not be verified and were discarded.',
    );
    await fireEvent.click(screen.getByRole('button', { name: 'compare safety numbers' }));
    expect(compared).toBe(1);
    await fireEvent.click(screen.getByTestId('security-notice-dismiss'));
    await waitFor(() => expect(changed).toBe(1));
    expect(calls).toEqual([{ cmd: 'dismiss_discarded', args: { peer: 'bob' } }]);
  });
});
