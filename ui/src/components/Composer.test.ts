import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import Composer from './Composer.svelte';
import type { MessageItem } from '../lib/ipc';
import { chat, sentMessage } from '../test/chat-fixture';

function mockSend() {
  const sent: Record<string, unknown>[] = [];
  mockIPC((cmd, args) => {
    if (cmd !== 'send_message') return null;
    const { peer, text } = args as { peer: string; text: string };
    sent.push({ peer, text });
    return sentMessage(peer, text, { id: `id${sent.length}`, cursor: sent.length });
  });
  return sent;
}

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('Composer', () => {
  it('sends with Enter and hands the stored message on', async () => {
    const sent = mockSend();
    const received: MessageItem[] = [];
    render(Composer, { peer: 'bob', chat: chat(), connection: 'online', onSent: (m) => received.push(m) });
    const input = screen.getByTestId('compose-input') as HTMLTextAreaElement;
    await fireEvent.input(input, { target: { value: 'hello bob' } });
    await fireEvent.keyDown(input, { key: 'Enter' });
    await waitFor(() => expect(sent).toEqual([{ peer: 'bob', text: 'hello bob' }]));
    await waitFor(() => expect(input.value).toBe(''));
    expect(received.map((m) => m.body)).toEqual(['hello bob']);
    expect(screen.queryByTestId('compose-disabled-reason')).toBeNull();
  });

  it('breaks the line with Shift+Enter instead of sending', async () => {
    const sent = mockSend();
    render(Composer, { peer: 'bob', chat: chat(), connection: 'online' });
    const input = screen.getByTestId('compose-input') as HTMLTextAreaElement;
    await fireEvent.input(input, { target: { value: 'line one' } });
    const shiftEnter = await fireEvent.keyDown(input, { key: 'Enter', shiftKey: true });
    expect(shiftEnter).toBe(true); // not prevented: the browser inserts the newline
    await new Promise((r) => setTimeout(r, 20));
    expect(sent).toEqual([]);

    await fireEvent.click(screen.getByRole('button', { name: 'Send message' }));
    await waitFor(() => expect(sent).toEqual([{ peer: 'bob', text: 'line one' }]));
  });

  it('does not send empty or blank text', async () => {
    const sent = mockSend();
    render(Composer, { peer: 'bob', chat: chat(), connection: 'online' });
    const input = screen.getByTestId('compose-input');
    await fireEvent.input(input, { target: { value: '   \n  ' } });
    await fireEvent.keyDown(input, { key: 'Enter' });
    expect((screen.getByTestId('compose-send') as HTMLButtonElement).disabled).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(sent).toEqual([]);
  });

  it('is disabled with a reason until keys are agreed', () => {
    mockSend();
    render(Composer, { peer: 'bob', chat: chat({ has_session: false }), connection: 'online' });
    expect((screen.getByTestId('compose-input') as HTMLTextAreaElement).disabled).toBe(true);
    expect((screen.getByTestId('compose-send') as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByTestId('compose-disabled-reason').textContent?.trim()).toBe(
      'Waiting for keys — the chat opens when bob accepts',
    );
  });

  it('lets a text be written while the session is set up, and says it waits for it', async () => {
    const sent = mockSend();
    render(Composer, { peer: 'bob', chat: chat({ has_session: false, session_coming: true }), connection: 'online' });
    const input = screen.getByTestId('compose-input') as HTMLTextAreaElement;
    expect(input.disabled).toBe(false);
    expect(screen.getByTestId('compose-disabled-reason').textContent).toContain(
      'Setting up the secure session with bob — messages wait',
    );
    await fireEvent.input(input, { target: { value: 'early' } });
    await fireEvent.keyDown(input, { key: 'Enter' });
    await waitFor(() => expect(sent).toEqual([{ peer: 'bob', text: 'early' }]));
  });

  it('is disabled with a reason when there is no chat yet', () => {
    mockSend();
    render(Composer, { peer: 'bob', chat: null, connection: 'online' });
    expect((screen.getByTestId('compose-input') as HTMLTextAreaElement).disabled).toBe(true);
    expect(screen.getByTestId('compose-disabled-reason').textContent).toContain('Waiting for keys');
  });

  it('is paused with a reason while the key changed', async () => {
    const sent = mockSend();
    render(Composer, { peer: 'bob', chat: chat({ key_changed: true }), connection: 'online' });
    const input = screen.getByTestId('compose-input') as HTMLTextAreaElement;
    expect(input.disabled).toBe(true);
    expect(screen.getByTestId('compose-disabled-reason').textContent?.trim()).toBe(
      "Sending is paused until you accept bob's new key or verify again",
    );
    await fireEvent.keyDown(input, { key: 'Enter' });
    expect(sent).toEqual([]);
  });

  it('stays usable offline and says the message will wait', async () => {
    const sent = mockSend();
    render(Composer, { peer: 'bob', chat: chat(), connection: 'offline' });
    const input = screen.getByTestId('compose-input') as HTMLTextAreaElement;
    expect(input.disabled).toBe(false);
    expect(screen.getByTestId('compose-disabled-reason').textContent).toBe(
      'Offline — messages will send when the relay is back',
    );
    await fireEvent.input(input, { target: { value: 'later' } });
    await fireEvent.keyDown(input, { key: 'Enter' });
    await waitFor(() => expect(sent).toEqual([{ peer: 'bob', text: 'later' }]));
  });

  it('keeps the text and explains when sending fails', async () => {
    mockIPC(() => {
      throw { code: 'internal', message: 'The queue is full.' };
    });
    render(Composer, { peer: 'bob', chat: chat(), connection: 'online' });
    const input = screen.getByTestId('compose-input') as HTMLTextAreaElement;
    await fireEvent.input(input, { target: { value: 'keep me' } });
    await fireEvent.keyDown(input, { key: 'Enter' });
    expect((await screen.findByRole('alert')).textContent).toContain('The queue is full.');
    expect(input.value).toBe('keep me');
  });
});

describe('Composer and files', () => {
  function fileMessage(peer: string, name: string): MessageItem {
    return sentMessage(peer, '', {
      id: 'f1',
      delivery: 'uploading',
      file: { name, size: 3, media_type: 'image/png', thumbnail: null },
    });
  }

  it('sends a pasted picture as a file, and leaves pasted text to the box', async () => {
    const pasted: Record<string, unknown>[] = [];
    mockIPC((cmd, args) => {
      if (cmd !== 'send_pasted') return null;
      pasted.push(args as Record<string, unknown>);
      return fileMessage('bob', 'shot.png');
    });
    const received: MessageItem[] = [];
    render(Composer, { peer: 'bob', chat: chat(), connection: 'online', onSent: (m) => received.push(m) });
    const input = screen.getByTestId('compose-input');
    const picture = new File([new Uint8Array([1, 2, 3])], 'shot.png', { type: 'image/png' });
    const withPicture = await fireEvent.paste(input, { clipboardData: { files: [picture] } });
    expect(withPicture).toBe(false); // taken: the picture does not land in the box
    await waitFor(() => expect(pasted).toEqual([{ peer: 'bob', name: 'shot.png', data: 'AQID' }]));
    expect(received.map((m) => m.file?.name)).toEqual(['shot.png']);
    const withText = await fireEvent.paste(input, { clipboardData: { files: [] } });
    expect(withText).toBe(true);
  });

  it('offers files only once the session is there', async () => {
    mockIPC(() => null);
    render(Composer, {
      peer: 'bob',
      chat: chat({ has_session: false, session_coming: true }),
      connection: 'online',
    });
    expect((screen.getByTestId('compose-attach') as HTMLButtonElement).disabled).toBe(true);
  });
});
