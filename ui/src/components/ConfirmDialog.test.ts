import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import ConfirmDialog from './ConfirmDialog.svelte';
import { MagpieError } from '../lib/ipc';

afterEach(() => cleanup());

function setup(onConfirm: () => Promise<void> | void = vi.fn()) {
  const onCancel = vi.fn();
  render(ConfirmDialog, {
    title: 'Delete alice?',
    message: 'This cannot be undone.',
    confirmLabel: 'Delete profile',
    requireText: 'alice',
    danger: true,
    onConfirm,
    onCancel,
  });
  return { onCancel };
}

describe('ConfirmDialog', () => {
  it('is a labelled modal dialog that starts in the text box', () => {
    setup();
    const dialog = screen.getByRole('alertdialog');
    expect(dialog.getAttribute('aria-modal')).toBe('true');
    expect(document.getElementById(dialog.getAttribute('aria-labelledby')!)?.textContent).toBe('Delete alice?');
    expect(document.activeElement).toBe(screen.getByTestId('confirm-input'));
  });

  it('keeps Tab inside the dialog', async () => {
    setup();
    await fireEvent.input(screen.getByTestId('confirm-input'), { target: { value: 'alice' } });
    const ok = screen.getByTestId('confirm-ok');
    ok.focus();
    await fireEvent.keyDown(ok, { key: 'Tab' });
    expect(document.activeElement).toBe(screen.getByTestId('confirm-input'));
    await fireEvent.keyDown(document.activeElement!, { key: 'Tab', shiftKey: true });
    expect(document.activeElement).toBe(ok);
  });

  it('shows a failure as a sentence and stays open', async () => {
    setup(() => Promise.reject(new MagpieError('credential_store', 'the keyring is locked')));
    await fireEvent.input(screen.getByTestId('confirm-input'), { target: { value: 'alice' } });
    await fireEvent.click(screen.getByTestId('confirm-ok'));
    const error = await screen.findByTestId('confirm-error');
    expect(error.textContent).toContain('The keyring is locked.');
    expect(error.textContent).toContain('Unlock or start your keyring');
  });

  it('cancels with Escape', async () => {
    const { onCancel } = setup();
    await fireEvent.keyDown(window, { key: 'Escape' });
    expect(onCancel).toHaveBeenCalledOnce();
  });
});
