import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import SafetyNumberDialog from './SafetyNumberDialog.svelte';
import type { SafetyNumberView } from '../lib/ipc';

const GROUPS = Array.from({ length: 12 }, (_, i) => String(10000 + i * 1111).slice(0, 5));
const KEY = '0a1b2c3d'.repeat(8);
const SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><rect width="1" height="1"/></svg>';

function view(overrides: Partial<SafetyNumberView> = {}): SafetyNumberView {
  return { peer: 'bob', groups: GROUPS, qr_svg: SVG, fingerprint: KEY, verified: false, key_changed: false, ...overrides };
}

function mockSafety(initial: SafetyNumberView) {
  const calls: { cmd: string; args: unknown }[] = [];
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    if (cmd === 'safety_number') return initial;
    if (cmd === 'mark_verified') return { ...initial, verified: true, key_changed: false };
    return null;
  });
  return calls;
}

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('SafetyNumberDialog', () => {
  it('shows 12 groups of 5 digits in 3 rows and the QR code', async () => {
    const calls = mockSafety(view());
    render(SafetyNumberDialog, { peer: 'bob', onClose: () => {}, onChanged: () => {} });
    const digits = await screen.findByTestId('safety-digits');
    const groups = [...digits.querySelectorAll('.group')].map((g) => g.textContent);
    expect(groups).toEqual(GROUPS);
    expect(groups.every((g) => /^\d{5}$/.test(g ?? ''))).toBe(true);
    expect(digits.querySelectorAll('.digit-row')).toHaveLength(3);

    const qr = screen.getByTestId('safety-qr') as HTMLImageElement;
    expect(qr.alt).toBe('QR code of the safety number');
    expect(qr.getAttribute('src')).toBe('data:image/svg+xml;charset=utf-8,' + encodeURIComponent(SVG));
    expect(calls[0]).toEqual({ cmd: 'safety_number', args: { peer: 'bob' } });

    const dialog = screen.getByTestId('safety-dialog');
    expect(dialog.getAttribute('role')).toBe('dialog');
    expect(dialog.getAttribute('aria-modal')).toBe('true');
  });

  it('marks the peer verified and reports the change', async () => {
    const calls = mockSafety(view());
    let changed = 0;
    render(SafetyNumberDialog, { peer: 'bob', onClose: () => {}, onChanged: () => changed++ });
    await fireEvent.click(await screen.findByTestId('mark-verified'));
    await screen.findByTestId('safety-verified');
    expect(calls.map((c) => c.cmd)).toEqual(['safety_number', 'mark_verified']);
    expect(calls[1]!.args).toEqual({ peer: 'bob', fingerprint: KEY });
    expect(changed).toBe(1);
    expect(screen.queryByTestId('mark-verified')).toBeNull();
  });

  it('shows the key the number is made of', async () => {
    mockSafety(view());
    render(SafetyNumberDialog, { peer: 'bob', onClose: () => {}, onChanged: () => {} });
    expect((await screen.findByTestId('safety-fingerprint')).textContent).toBe(
      '0a1b 2c3d 0a1b 2c3d 0a1b 2c3d 0a1b 2c3d 0a1b 2c3d 0a1b 2c3d 0a1b 2c3d 0a1b 2c3d',
    );
  });

  it('verifies nothing when the key changed while the number was open, and shows the new number', async () => {
    const calls: { cmd: string; args: unknown }[] = [];
    let served = view();
    mockIPC((cmd, args) => {
      calls.push({ cmd, args });
      if (cmd === 'safety_number') return served;
      if (cmd === 'mark_verified') {
        served = view({ key_changed: true, fingerprint: 'ee'.repeat(32), groups: GROUPS.map(() => '99999') });
        throw { code: 'fingerprint_mismatch', message: "bob's key changed while you were comparing." };
      }
      return null;
    });
    let changed = 0;
    render(SafetyNumberDialog, { peer: 'bob', onClose: () => {}, onChanged: () => changed++ });
    await fireEvent.click(await screen.findByTestId('mark-verified'));
    expect((await screen.findByRole('alert')).textContent).toContain('nothing was verified');
    expect(calls.map((c) => c.cmd)).toEqual(['safety_number', 'mark_verified', 'safety_number']);
    expect(calls[1]!.args).toEqual({ peer: 'bob', fingerprint: KEY });
    expect(screen.getByTestId('safety-digits').textContent).toContain('99999');
    expect(screen.queryByTestId('safety-verified')).toBeNull();
    expect(changed).toBe(1);
  });

  it('says it is the new key’s number during a key change', async () => {
    mockSafety(view({ key_changed: true }));
    render(SafetyNumberDialog, { peer: 'bob', onClose: () => {}, onChanged: () => {} });
    expect((await screen.findByRole('note')).textContent).toContain('This is the number of the new key');
  });

  it('closes with Escape, keeps Tab inside and returns focus', async () => {
    mockSafety(view());
    const opener = document.createElement('button');
    document.body.append(opener);
    opener.focus();
    let closed = 0;
    const { unmount } = render(SafetyNumberDialog, { peer: 'bob', onClose: () => closed++, onChanged: () => {} });
    await screen.findByTestId('mark-verified');
    const close = screen.getByTestId('safety-close');
    expect(document.activeElement).toBe(close);

    const verify = screen.getByTestId('mark-verified');
    verify.focus();
    await fireEvent.keyDown(window, { key: 'Tab' });
    expect(document.activeElement).toBe(close);
    await fireEvent.keyDown(window, { key: 'Tab', shiftKey: true });
    expect(document.activeElement).toBe(verify);

    await fireEvent.keyDown(window, { key: 'Escape' });
    expect(closed).toBe(1);
    unmount();
    await waitFor(() => expect(document.activeElement).toBe(opener));
    opener.remove();
  });

  it('explains a failure in words', async () => {
    mockIPC(() => {
      throw { code: 'internal', message: 'No key for bob.' };
    });
    render(SafetyNumberDialog, { peer: 'bob', onClose: () => {}, onChanged: () => {} });
    expect((await screen.findByRole('alert')).textContent).toContain('No key for bob.');
  });
});
