import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import SettingsDialog from './SettingsDialog.svelte';
import { makeIdentity } from '../test/fake-backend';
import { MagpieError, type IdentityView, type Settings } from '../lib/ipc';

afterEach(() => cleanup());

function setup(identity: IdentityView = makeIdentity('alice'), onSave = vi.fn(async (_: Settings) => {})) {
  const onDelete = vi.fn(async (_: string) => {});
  const onClose = vi.fn();
  render(SettingsDialog, {
    identity,
    settings: { theme: 'system', notifications: true, lock_after_minutes: 15, keep_running_in_tray: false },
    onSave,
    onDelete,
    onClose,
  });
  return { onSave, onDelete, onClose };
}

describe('SettingsDialog', () => {
  it('names a remote relay without calling it local, and shows the validity as dates', () => {
    setup({ ...makeIdentity('bob'), relay_url: 'https://relay.example.org:8443', local_relay: false });
    const relay = screen.getByTestId('settings-relay-url').textContent ?? '';
    expect(relay).toContain('https://relay.example.org:8443');
    expect(relay).not.toContain('local relay');
    expect(screen.getByTestId('settings-dialog').textContent).toMatch(/Valid from .*2026 until .*2027/);
  });

  it('explains a failed save in a sentence', async () => {
    setup(makeIdentity('alice'), vi.fn(() => Promise.reject(new MagpieError('data_directory', 'The data folder is read-only.'))));
    await fireEvent.change(screen.getByTestId('settings-theme'), { target: { value: 'light' } });
    await waitFor(() => expect(screen.getByTestId('settings-error').textContent).toBe('The data folder is read-only.'));
  });

  it('deletes with the profile id once the name is typed', async () => {
    const { onDelete } = setup();
    await fireEvent.click(screen.getByTestId('settings-delete'));
    await fireEvent.input(screen.getByTestId('confirm-input'), { target: { value: 'alice' } });
    await fireEvent.click(screen.getByTestId('confirm-ok'));
    expect(onDelete).toHaveBeenCalledWith('id-alice');
  });

  it('closes with Done', async () => {
    const { onClose } = setup();
    await fireEvent.click(screen.getByTestId('settings-close'));
    expect(onClose).toHaveBeenCalledOnce();
  });
});
