import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import FileCard from './FileCard.svelte';
import type { FileItem, FileStatus } from '../lib/ipc';
import { transfers, viewer } from '../lib/transfers.svelte';

const photo: FileItem = {
  name: 'holiday.jpg',
  size: 2_400_000,
  media_type: 'image/jpeg',
  thumbnail: { url: 'data:image/jpeg;base64,AA==', width: 320, height: 240 },
};

function mockFiles(status: FileStatus) {
  const calls: { cmd: string; args: unknown }[] = [];
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    if (cmd === 'file_status') return status;
    if (cmd === 'image_data') return 'data:image/jpeg;base64,AA==';
    return null;
  });
  return calls;
}

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('FileCard', () => {
  it('shows a preview at its own proportions, and opens or saves a file that is here', async () => {
    const calls = mockFiles({ state: 'ready', reason: null });
    render(FileCard, { id: 'a1', file: photo, outgoing: false });
    const image = screen.getByRole('img', { name: 'holiday.jpg' }) as HTMLImageElement;
    expect([image.width, image.height]).toEqual([240, 180]);
    expect(screen.getByText('2.4 MB · image/jpeg')).toBeTruthy();
    await fireEvent.click(await screen.findByTestId('file-save'));
    await fireEvent.click(screen.getByTestId('file-open'));
    await waitFor(() =>
      expect(calls.filter((c) => c.cmd !== 'file_status')).toEqual([
        { cmd: 'save_file_as', args: { id: 'a1' } },
        { cmd: 'open_file', args: { id: 'a1' } },
      ]),
    );
    await fireEvent.click(screen.getByTestId('file-preview'));
    expect(viewer.current).toEqual({ id: 'a1', name: 'holiday.jpg' });
    viewer.current = null;
  });

  it('shows progress with a cancel while it moves, and the reason and a retry when it failed', async () => {
    const calls = mockFiles({ state: 'downloading', reason: null });
    render(FileCard, { id: 'b1', file: { ...photo, thumbnail: null }, outgoing: false });
    transfers.handle({ type: 'file_progress', peer: 'alice', id: 'b1', done: 50, total: 200 });
    expect(await screen.findByText('Downloading… 25%')).toBeTruthy();
    await fireEvent.click(screen.getByTestId('file-cancel'));
    await waitFor(() => expect(calls.some((c) => c.cmd === 'cancel_file')).toBe(true));
    transfers.handle({
      type: 'file_status_changed',
      peer: 'alice',
      id: 'b1',
      status: { state: 'failed', reason: 'failed its integrity check: segment 3 does not open' },
    });
    expect(await screen.findByText('Failed: failed its integrity check: segment 3 does not open')).toBeTruthy();
    await fireEvent.click(screen.getByTestId('file-retry'));
    await waitFor(() => expect(calls.some((c) => c.cmd === 'download_file')).toBe(true));
  });

  it('shows a small picture that came without a preview once it is here', async () => {
    const calls = mockFiles({ state: 'ready', reason: null });
    render(FileCard, { id: 'c1', file: { ...photo, size: 40_000, thumbnail: null }, outgoing: false });
    const shown = await screen.findByTestId('file-inline');
    expect((shown.querySelector('img') as HTMLImageElement).src).toBe('data:image/jpeg;base64,AA==');
    expect(calls.filter((c) => c.cmd === 'image_data')).toEqual([{ cmd: 'image_data', args: { id: 'c1' } }]);
  });
});
