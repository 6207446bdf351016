import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import RequestsPanel from './RequestsPanel.svelte';
import type { RequestsView } from '../lib/ipc';

const FINGERPRINT = '0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9';

function requests(overrides: Partial<RequestsView> = {}): RequestsView {
  return {
    incoming: [
      { request_id: 'r-alice', peer: 'alice', fingerprint: FINGERPRINT, sent_at: 1_790_000_000, key_changed: false },
      {
        request_id: 'r-carol',
        peer: 'carol',
        fingerprint: 'ffff'.repeat(16),
        sent_at: 1_790_000_100,
        key_changed: true,
      },
    ],
    outgoing: ['bob'],
    ...overrides,
  };
}

function mockCommands(fail?: { code: string; message: string }) {
  const calls: { cmd: string; args: unknown }[] = [];
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    if (fail) throw fail;
    return null;
  });
  return calls;
}

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('RequestsPanel', () => {
  it('lists incoming requests with a fingerprint preview, and outgoing ones as waiting', () => {
    mockCommands();
    render(RequestsPanel, { requests: requests(), onChanged: () => {} });
    expect(screen.getByTestId('requests-count').textContent).toBe('2');
    const alice = screen.getByTestId('request-alice');
    expect(alice.textContent).toContain('alice wants to start an encrypted chat');
    expect(alice.querySelector('code')?.textContent).toBe('0a1b 2c3d 4e5f 6071');
    expect(alice.querySelector('[role="note"]')).toBeNull();
    expect(screen.getByTestId('request-carol').querySelector('[role="note"]')?.textContent).toContain(
      'not the key carol used before',
    );
    expect(screen.getByTestId('outgoing-bob').textContent?.trim()).toBe('Waiting for bob to accept');
  });

  it('accepts and declines with the right commands', async () => {
    const calls = mockCommands();
    let changed = 0;
    render(RequestsPanel, { requests: requests(), onChanged: () => changed++ });
    await fireEvent.click(screen.getByTestId('accept-alice'));
    await waitFor(() => expect(changed).toBe(1));
    await fireEvent.click(screen.getByTestId('decline-carol'));
    await waitFor(() => expect(changed).toBe(2));
    expect(calls).toEqual([
      { cmd: 'accept_request', args: { requestId: 'r-alice', fingerprint: FINGERPRINT } },
      { cmd: 'decline_request', args: { requestId: 'r-carol' } },
    ]);
  });

  it('lists two requests from one name apart, and accepts the one chosen with its own key', async () => {
    const calls = mockCommands();
    const impostor = { request_id: 'r-other', peer: 'alice', fingerprint: 'ee'.repeat(32), sent_at: 1, key_changed: true };
    render(RequestsPanel, { requests: requests({ incoming: [impostor, requests().incoming[0]!] }), onChanged: () => {} });
    const items = screen.getAllByTestId('request-alice');
    expect(items).toHaveLength(2);
    const genuine = items.find((item) => item.dataset.requestId === 'r-alice')!;
    await fireEvent.click(genuine.querySelector('button.accept')!);
    await waitFor(() => expect(calls).toHaveLength(1));
    expect(calls[0]).toEqual({ cmd: 'accept_request', args: { requestId: 'r-alice', fingerprint: FINGERPRINT } });
  });

  it('starts a chat with the typed username', async () => {
    const calls = mockCommands();
    let changed = 0;
    render(RequestsPanel, { requests: requests({ incoming: [], outgoing: [] }), onChanged: () => changed++ });
    expect(screen.getByText('Nobody has asked to chat.')).toBeTruthy();
    const input = screen.getByTestId('new-chat-input') as HTMLInputElement;
    expect(input.placeholder).toBe('Username');
    expect((screen.getByTestId('new-chat-submit') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.input(input, { target: { value: '  Dave ' } });
    await fireEvent.click(screen.getByTestId('new-chat-submit'));
    await waitFor(() => expect(changed).toBe(1));
    expect(calls).toEqual([{ cmd: 'start_chat', args: { peer: 'dave' } }]);
    expect(input.value).toBe('');
  });

  it('explains why a chat could not start, without raw JSON', async () => {
    mockCommands({ code: 'unknown_user', message: 'There is no user named zed on this relay.' });
    let changed = 0;
    render(RequestsPanel, { requests: requests(), onChanged: () => changed++ });
    await fireEvent.input(screen.getByTestId('new-chat-input'), { target: { value: 'zed' } });
    await fireEvent.click(screen.getByTestId('new-chat-submit'));
    const error = await screen.findByTestId('new-chat-error');
    expect(error.textContent).toContain('There is no user named zed on this relay.');
    expect(error.textContent).not.toContain('{');
    expect(changed).toBe(0);
  });
});
