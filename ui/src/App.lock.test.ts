import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
import App from './App.svelte';
import { fakeBackend, makeChat, type FakeOptions } from './test/fake-backend';

function start(options: FakeOptions = {}) {
  const backend = fakeBackend(options);
  mockIPC(backend.handler, { shouldMockEvents: true });
  render(App);
  return backend;
}

async function typePassphrase(text: string) {
  await fireEvent.input(await screen.findByTestId('lock-passphrase'), { target: { value: text } });
  await fireEvent.click(screen.getByTestId('lock-unlock'));
}

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('the app lock', () => {
  it('starts behind the lock screen, refuses a wrong passphrase, then waits, then opens with the right one', async () => {
    const backend = start({ profiles: ['alice'], lockPassphrase: 'correct horse', locked: true });
    const lock = await screen.findByTestId('lock-screen');
    expect(lock.textContent).toContain('alice');
    expect(screen.queryByTestId('sidebar')).toBeNull();
    expect(screen.queryByTestId('notice')).toBeNull();

    await typePassphrase('wrong one');
    await waitFor(() => expect(screen.getByTestId('lock-status').textContent).toMatch(/not the right one/));
    expect((screen.getByTestId('lock-passphrase') as HTMLInputElement).value).toBe('');
    await typePassphrase('wrong two');
    await typePassphrase('wrong three');
    await waitFor(() => expect(screen.getByTestId('lock-wait').textContent).toMatch(/Next try in 2 s/));
    expect((screen.getByTestId('lock-passphrase') as HTMLInputElement).disabled).toBe(true);
    await waitFor(() => expect(screen.queryByTestId('lock-wait')).toBeNull(), { timeout: 3000 });

    await typePassphrase('correct horse');
    expect((await screen.findByTestId('profile-name')).textContent).toBe('alice');
    expect(screen.queryByTestId('lock-screen')).toBeNull();
    expect(backend.argsOf('unlock').map((a) => a.passphrase)).toEqual([
      'wrong one',
      'wrong two',
      'wrong three',
      'correct horse',
    ]);
  });

  it('offers another profile when the locked one is not open', async () => {
    start({ profiles: ['alice', 'bob'], lockPassphrase: 'correct horse', locked: true });
    await fireEvent.click(await screen.findByTestId('lock-other-profile'));
    expect(await screen.findByTestId('profile-chooser')).toBeTruthy();
  });

  it('locks with Ctrl+L over an open dialog, forgets the chats, and comes back after unlocking', async () => {
    const backend = start({
      profiles: ['alice'],
      lockPassphrase: 'correct horse',
      chats: [makeChat('bob', { last_message: null })],
    });
    await screen.findByTestId('sidebar');
    await fireEvent.keyDown(window, { key: ',', ctrlKey: true });
    await screen.findByTestId('settings-dialog');
    await fireEvent.keyDown(window, { key: 'l', ctrlKey: true });
    await waitFor(() => expect(backend.count('lock_now')).toBe(1));
    await emit('magpie://event', { type: 'locked' });
    const lock = await screen.findByTestId('lock-screen');
    expect(lock.textContent).toContain('keep arriving');
    expect(screen.queryByTestId('lock-other-profile')).toBeNull();
    expect(screen.queryByTestId('settings-dialog')).toBeNull();
    expect(document.body.textContent).not.toContain('bob');

    await typePassphrase('correct horse');
    await screen.findByTestId('sidebar');
    expect(screen.queryByTestId('settings-dialog')).toBeNull();
    expect(document.body.textContent).toContain('bob');
  });

  it('says to set a passphrase when Ctrl+L has none to lock with', async () => {
    start({ profiles: ['alice'] });
    await screen.findByTestId('sidebar');
    await fireEvent.keyDown(window, { key: 'l', ctrlKey: true });
    expect((await screen.findByTestId('notice')).textContent).toMatch(/Set a passphrase first/);
  });

  it('sets a passphrase from Settings, typed twice, with the warning first', async () => {
    const backend = start({ profiles: ['alice'] });
    await screen.findByTestId('sidebar');
    await fireEvent.keyDown(window, { key: ',', ctrlKey: true });
    await fireEvent.click(await screen.findByTestId('lock-set'));
    const dialog = await screen.findByTestId('lock-dialog');
    expect(dialog.textContent).toMatch(/Nobody can recover a forgotten passphrase/);
    // Drawn outside Settings, which goes inert under it (jsdom keeps `inert` as a property only).
    const inertAround = (node: HTMLElement | null): boolean =>
      node !== null && ((node as HTMLElement & { inert?: boolean }).inert === true || inertAround(node.parentElement));
    expect(inertAround(dialog)).toBe(false);
    expect(inertAround(screen.getByTestId('settings-dialog'))).toBe(true);
    await fireEvent.input(screen.getByTestId('lock-new'), { target: { value: 'correct horse' } });
    await fireEvent.input(screen.getByTestId('lock-again'), { target: { value: 'correct hors' } });
    await fireEvent.click(screen.getByTestId('lock-save'));
    expect(dialog.textContent).toMatch(/differ/);
    expect(backend.count('set_lock_passphrase')).toBe(0);
    await fireEvent.input(screen.getByTestId('lock-again'), { target: { value: 'correct horse' } });
    await fireEvent.click(screen.getByTestId('lock-save'));
    await waitFor(() => expect(screen.queryByTestId('lock-dialog')).toBeNull());
    expect(backend.argsOf('set_lock_passphrase')).toEqual([{ current: null, passphrase: 'correct horse' }]);
    expect(screen.getByTestId('lock-state').textContent).toMatch(/asks for a passphrase/);
    expect(screen.getByTestId('lock-idle')).toBeTruthy();
  });
});

describe('from the tray and notifications', () => {
  it('opens the chat of a clicked notification and shows what the tray could not do', async () => {
    start({ profiles: ['alice'], chats: [makeChat('bob'), makeChat('carol')] });
    await screen.findByTestId('sidebar');
    await emit('magpie://event', { type: 'open_chat', peer: 'carol' });
    await waitFor(() => expect(screen.getByTestId('conversation-peer').textContent).toBe('carol'));
    await emit('magpie://event', { type: 'notice', message: 'Set a passphrase first.' });
    expect((await screen.findByTestId('notice')).textContent).toContain('Set a passphrase first.');
  });
});

describe('locking while loading', () => {
  it('keeps the lock screen when the window locks while the chats are still being read', async () => {
    let release: () => void = () => {};
    const slow = new Promise<void>((resolve) => (release = resolve));
    const backend = start({
      profiles: ['alice'],
      lockPassphrase: 'correct horse',
      chats: [makeChat('bob')],
    });
    const settings = backend.handler('get_settings');
    backend.state.overrides.get_settings = () => slow.then(() => settings);
    cleanup();
    render(App);
    // The profiles and chats were read (unlocked), the settings not yet.
    await waitFor(() => expect(backend.count('list_profiles')).toBeGreaterThan(1));
    await waitFor(() => expect(backend.count('chats')).toBeGreaterThan(1));
    // Rust locks the window before the first load has finished.
    backend.handler('lock_now');
    await emit('magpie://event', { type: 'locked' });
    release();
    expect(await screen.findByTestId('lock-screen')).toBeTruthy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(screen.queryByTestId('sidebar')).toBeNull();
    expect(document.body.textContent).not.toContain('bob');
  });

  it('comes to the lock screen, not a stuck start, when the lock falls while the chats are read', async () => {
    let release: () => void = () => {};
    const slow = new Promise<void>((resolve) => (release = resolve));
    const backend = start({ profiles: ['alice'], lockPassphrase: 'correct horse', chats: [makeChat('bob')] });
    const chats = backend.handler('chats');
    backend.state.overrides.chats = () => slow.then(() => chats);
    cleanup();
    render(App);
    await waitFor(() => expect(backend.count('chats')).toBeGreaterThan(1));
    await waitFor(() => expect(backend.count('get_settings')).toBeGreaterThan(1));
    backend.handler('lock_now');
    await emit('magpie://event', { type: 'locked' });
    release();
    expect(await screen.findByTestId('lock-screen')).toBeTruthy();
    expect(screen.queryByTestId('loading')).toBeNull();
    expect(document.body.textContent).not.toContain('bob');
  });
});
