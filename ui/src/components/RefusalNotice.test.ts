import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
import RefusalNotice from './RefusalNotice.svelte';
import type { UiEvent } from '../lib/ipc';

async function send(event: UiEvent) {
  await emit('magpie://event', event);
}

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('RefusalNotice', () => {
  it('says a full mailbox in its own words, for this chat only, until dismissed', async () => {
    mockIPC(() => null, { shouldMockEvents: true });
    render(RefusalNotice, { peer: 'bob' });
    // Let the listener attach.
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(screen.queryByTestId('refusal-notice')).toBeNull();

    await send({ type: 'send_refused', peer: 'carol', id: 'm1', reason: 'mailbox_full' });
    expect(screen.queryByTestId('refusal-notice')).toBeNull();

    await send({ type: 'send_refused', peer: 'bob', id: 'm2', reason: 'mailbox_full' });
    await waitFor(() => expect(screen.getByTestId('refusal-notice-text').textContent).toContain("bob's mailbox on the relay is full"));

    await fireEvent.click(screen.getByTestId('refusal-notice-dismiss'));
    expect(screen.queryByTestId('refusal-notice')).toBeNull();

    await send({ type: 'send_refused', peer: 'bob', id: 'm3', reason: 'refused' });
    await waitFor(() => expect(screen.getByTestId('refusal-notice-text').textContent).toContain('The relay refused'));
  });
});
