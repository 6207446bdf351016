import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import BackupDialog from './BackupDialog.svelte';
import RestoreDialog from './RestoreDialog.svelte';
import type { BackupProgress, IdentityView } from '../lib/ipc';

type Args = Record<string, unknown>;
type Progress = { onmessage: (p: BackupProgress) => void };

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('BackupDialog', () => {
  it('asks for the passphrase twice, then reports progress and what it saved', async () => {
    const calls: { cmd: string; args: Args }[] = [];
    let finish = () => {};
    mockIPC(async (cmd, args) => {
      const a = (args ?? {}) as Args;
      calls.push({ cmd, args: a });
      if (cmd !== 'backup_now') return null;
      (a.progress as Progress).onmessage({ done: 40, total: 100 });
      await new Promise<void>((resolve) => (finish = resolve));
      return { file_name: 'magpie-dana.magpie-backup', contacts: 2, messages: 1234, bytes: 52_000 };
    });
    render(BackupDialog, { username: 'dana', onClose: () => {} });

    await fireEvent.input(screen.getByTestId('backup-passphrase'), { target: { value: 'short' } });
    await fireEvent.click(screen.getByTestId('backup-start'));
    expect(screen.getByTestId('backup-dialog').textContent).toContain('at least 8 characters');
    await fireEvent.input(screen.getByTestId('backup-passphrase'), { target: { value: 'correct horse' } });
    await fireEvent.input(screen.getByTestId('backup-passphrase-again'), { target: { value: 'correct hose' } });
    await fireEvent.click(screen.getByTestId('backup-start'));
    expect(screen.getByTestId('backup-dialog').textContent).toContain('The two passphrases differ.');
    expect(calls).toHaveLength(0);

    await fireEvent.input(screen.getByTestId('backup-passphrase-again'), { target: { value: 'correct horse' } });
    await fireEvent.click(screen.getByTestId('backup-start'));
    await waitFor(() => expect(screen.getByTestId('backup-progress').textContent).toContain('40%'));
    expect(calls[0]!.args.passphrase).toBe('correct horse');
    finish();
    await waitFor(() => expect(screen.getByTestId('backup-done').textContent).toContain('1,234 messages'));
  });

  it('cancels the backup under way when closed', async () => {
    const calls: string[] = [];
    mockIPC(async (cmd) => {
      calls.push(cmd);
      if (cmd === 'backup_now') await new Promise(() => {});
      return null;
    });
    render(BackupDialog, { username: 'dana', onClose: () => {} });
    for (const id of ['backup-passphrase', 'backup-passphrase-again']) {
      await fireEvent.input(screen.getByTestId(id), { target: { value: 'correct horse' } });
    }
    await fireEvent.click(screen.getByTestId('backup-start'));
    await waitFor(() => expect(calls).toContain('backup_now'));
    await fireEvent.click(screen.getByTestId('backup-cancel'));
    expect(calls).toContain('cancel_backup');
  });
});

describe('RestoreDialog', () => {
  it('restores the chosen file, and says so when the passphrase is wrong', async () => {
    let attempts = 0;
    const identity = { username: 'dana' } as IdentityView;
    mockIPC((cmd, args) => {
      if (cmd === 'pick_backup') return { file_name: 'magpie-dana.magpie-backup', bytes: 52_000 };
      if (cmd === 'restore_backup') {
        attempts++;
        if ((args as Args).passphrase !== 'correct horse') {
          throw { code: 'backup', message: 'That passphrase does not open this backup.' };
        }
        return identity;
      }
      return null;
    });
    const restored: IdentityView[] = [];
    render(RestoreDialog, { onRestored: (i: IdentityView) => restored.push(i), onClose: () => {} });
    expect((screen.getByTestId('restore-start') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.click(screen.getByTestId('restore-choose'));
    await waitFor(() => expect(screen.getByTestId('restore-file').textContent).toContain('magpie-dana.magpie-backup'));

    await fireEvent.input(screen.getByTestId('restore-passphrase'), { target: { value: 'wrong horse' } });
    await fireEvent.click(screen.getByTestId('restore-start'));
    await waitFor(() =>
      expect(screen.getByTestId('restore-error').textContent).toBe('That passphrase does not open this backup.'),
    );
    await fireEvent.input(screen.getByTestId('restore-passphrase'), { target: { value: 'correct horse' } });
    await fireEvent.click(screen.getByTestId('restore-start'));
    await waitFor(() => expect(restored).toEqual([identity]));
    expect(attempts).toBe(2);
  });
});
