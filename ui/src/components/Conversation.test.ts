import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import Conversation from './Conversation.svelte';
import type { SafetyNumberView } from '../lib/ipc';
import { chat, sentMessage } from '../test/chat-fixture';
import { makeIdentity } from '../test/fake-backend';

/** The key a key change presents: what "Accept new key" must name. */
const NEW_KEY = 'cd'.repeat(32);

const me = makeIdentity('alice');

const safety: SafetyNumberView = {
  peer: 'bob',
  groups: Array.from({ length: 12 }, () => '12345'),
  qr_svg: '<svg xmlns="http://www.w3.org/2000/svg"/>',
  fingerprint: NEW_KEY,
  verified: false,
  key_changed: true,
};

function mockBackend() {
  const calls: { cmd: string; args: unknown }[] = [];
  mockIPC(
    (cmd, args) => {
      calls.push({ cmd, args });
      switch (cmd) {
        case 'messages':
          return { messages: [], has_more: false, rekeys: [] };
        case 'safety_number':
          return safety;
        case 'clear_chat':
          return 0;
        case 'send_message': {
          const { peer, text } = args as { peer: string; text: string };
          return sentMessage(peer, text, { sent_at: Date.now() / 1000 });
        }
        default:
          return null;
      }
    },
    { shouldMockEvents: true },
  );
  return calls;
}

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('Conversation', () => {
  it('shows the name, an unverified badge and the connection state', async () => {
    mockBackend();
    render(Conversation, { peer: 'bob', chat: chat(), connection: 'online', me, onChanged: () => {} });
    expect(screen.getByTestId('conversation-peer').textContent).toBe('bob');
    expect(screen.getByTestId('verification-badge').textContent?.trim()).toBe('Not verified');
    expect(screen.getByTestId('connection-dot').getAttribute('title')).toContain('Connected');
    expect(screen.queryByTestId('key-change-banner')).toBeNull();
    await screen.findByText(/No messages yet/);
  });

  it('blocks the chat with the key-change banner; "Accept new key" calls the backend', async () => {
    const calls = mockBackend();
    let changed = 0;
    render(Conversation, {
      peer: 'bob',
      chat: chat({ key_changed: true, new_fingerprint: NEW_KEY }),
      connection: 'online',
      me,
      onChanged: () => changed++,
    });
    const banner = screen.getByTestId('key-change-banner');
    expect(banner.textContent?.replace(/\s+/g, ' ').trim()).toContain(
      "bob's security key changed. This can mean bob reinstalled Magpie — or that someone is intercepting. " +
        'Compare safety numbers before you continue.',
    );
    expect(screen.getByTestId('verification-badge').textContent?.trim()).toBe('Key changed');
    expect((screen.getByTestId('compose-input') as HTMLTextAreaElement).disabled).toBe(true);
    expect(screen.getByTestId('new-key-fingerprint').textContent).toBe('cdcd cdcd cdcd cdcd');

    await fireEvent.click(screen.getByRole('button', { name: 'Accept new key' }));
    await waitFor(() => expect(changed).toBe(1));
    expect(calls.filter((c) => c.cmd === 'accept_new_key')).toEqual([
      { cmd: 'accept_new_key', args: { peer: 'bob', fingerprint: NEW_KEY } },
    ]);
  });

  it('opens the safety number from the banner and from the menu', async () => {
    mockBackend();
    render(Conversation, {
      peer: 'bob',
      chat: chat({ key_changed: true }),
      connection: 'online',
      me,
      onChanged: () => {},
    });
    await fireEvent.click(screen.getByRole('button', { name: 'Compare safety numbers' }));
    await screen.findByTestId('safety-digits');
    expect(screen.getByText(/This is the number of the new key/)).toBeTruthy();
    await fireEvent.click(screen.getByTestId('safety-close'));
    expect(screen.queryByTestId('safety-dialog')).toBeNull();

    const menuButton = screen.getByRole('button', { name: 'Chat options' });
    await fireEvent.click(menuButton);
    expect(menuButton.getAttribute('aria-expanded')).toBe('true');
    await fireEvent.click(screen.getByRole('menuitem', { name: 'Safety number' }));
    await screen.findByTestId('safety-dialog');
  });

  it('shows a sent message at once', async () => {
    const calls = mockBackend();
    render(Conversation, { peer: 'bob', chat: chat(), connection: 'online', me, onChanged: () => {} });
    await screen.findByText(/No messages yet/);
    const input = screen.getByTestId('compose-input');
    await fireEvent.input(input, { target: { value: 'hi bob' } });
    await fireEvent.keyDown(input, { key: 'Enter' });
    await screen.findByTestId('message-new1');
    expect(calls.find((c) => c.cmd === 'send_message')?.args).toEqual({ peer: 'bob', text: 'hi bob' });
  });
});

describe('Conversation: deleting the messages', () => {
  it('asks first, then deletes them and reloads the list, keeping the draft', async () => {
    const calls = mockBackend();
    let changed = 0;
    render(Conversation, { peer: 'bob', chat: chat(), connection: 'online', me, onChanged: () => changed++ });
    await screen.findByText(/No messages yet/);
    const input = screen.getByTestId('compose-input') as HTMLTextAreaElement;
    await fireEvent.input(input, { target: { value: 'half-written' } });

    await fireEvent.click(screen.getByTestId('conversation-menu'));
    await fireEvent.click(screen.getByTestId('menu-clear-chat'));
    expect(screen.getByRole('alertdialog').textContent).toContain('Delete all messages with bob?');
    expect(calls.some((c) => c.cmd === 'clear_chat')).toBe(false);

    const loads = calls.filter((c) => c.cmd === 'messages').length;
    await fireEvent.click(screen.getByRole('button', { name: 'Delete messages' }));
    await waitFor(() => expect(screen.queryByRole('alertdialog')).toBeNull());
    expect(calls.filter((c) => c.cmd === 'clear_chat')).toEqual([{ cmd: 'clear_chat', args: { peer: 'bob' } }]);
    await waitFor(() => expect(calls.filter((c) => c.cmd === 'messages').length).toBe(loads + 1));
    expect(changed).toBe(1);
    expect((screen.getByTestId('compose-input') as HTMLTextAreaElement).value).toBe('half-written');
  });

  it('cancelling deletes nothing', async () => {
    const calls = mockBackend();
    render(Conversation, { peer: 'bob', chat: chat(), connection: 'online', me, onChanged: () => {} });
    await fireEvent.click(screen.getByTestId('conversation-menu'));
    await fireEvent.click(screen.getByTestId('menu-clear-chat'));
    await fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    expect(screen.queryByRole('alertdialog')).toBeNull();
    expect(calls.some((c) => c.cmd === 'clear_chat')).toBe(false);
  });
});
