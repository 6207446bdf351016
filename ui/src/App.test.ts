import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
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

afterEach(() => {
  cleanup();
  clearMocks();
  delete document.documentElement.dataset.theme;
});

describe('first start', () => {
  it('shows onboarding, full window, when there is no profile', async () => {
    start();
    await screen.findByTestId('onboarding');
    expect(screen.queryByTestId('sidebar')).toBeNull();
    expect(screen.getByTestId('onboarding').textContent).toContain('Secret Service');
  });

  it('shows a sentence, not JSON, when the profiles cannot be read', async () => {
    start({
      overrides: {
        list_profiles: () => {
          throw { code: 'internal', message: 'The profile list stopped.' };
        },
      },
    });
    const panel = await screen.findByTestId('startup-error');
    expect(panel.textContent).toMatch(/internal problem/);
    expect(panel.textContent).not.toContain('{');
  });

  it('finishes onboarding into the app with the new profile', async () => {
    const backend = start();
    await fireEvent.input(await screen.findByTestId('onboarding-username'), { target: { value: 'ana' } });
    await fireEvent.click(screen.getByTestId('onboarding-create'));
    await fireEvent.click(await screen.findByTestId('onboarding-start'));
    expect((await screen.findByTestId('profile-name')).textContent).toBe('ana');
    expect(backend.argsOf('create_profile')).toEqual([{ username: 'ana', relay: { kind: 'local' } }]);
  });
});

describe('with a profile', () => {
  it('shows where keys are kept and the version from Rust', async () => {
    start({ profiles: ['alice'] });
    expect(await screen.findByTestId('credential-backend')).toHaveProperty('textContent', 'Secret Service');
    expect((await screen.findByTestId('about-button')).textContent).toContain('v9.8.7');
    expect(screen.getByTestId('profile-name').textContent).toBe('alice');
  });

  it('explains an unavailable credential store instead of crashing', async () => {
    start({ profiles: ['alice'], info: { credential_store: { backend: 'Secret Service', available: false, problem: 'No keyring service is running.' } } });
    await screen.findByText(/Secret Service is not available/);
    expect(screen.getByTestId('credential-status').textContent).toContain('No keyring service is running.');
  });

  it('opens About with the data folder, closes it with Escape and gives focus back', async () => {
    start({ profiles: ['alice'] });
    const aboutButton = await screen.findByTestId('about-button');
    aboutButton.focus();
    await fireEvent.click(aboutButton);
    expect((await screen.findByTestId('about-data-dir')).textContent).toBe('/tmp/magpie-test-data');
    expect(document.activeElement).toBe(screen.getByTestId('about-close'));
    await fireEvent.keyDown(window, { key: 'Escape' });
    expect(screen.queryByTestId('about-dialog')).toBeNull();
    expect(document.activeElement).toBe(aboutButton);
  });

  it('switches profile through the profile menu with open_profile', async () => {
    const backend = start({ profiles: ['alice', 'bob'] });
    await fireEvent.click(await screen.findByTestId('profile-switcher'));
    const options = screen.getAllByTestId('profile-option');
    expect(options.map((o) => o.textContent)).toEqual([expect.stringContaining('bob')]);
    await fireEvent.click(options[0]!);
    await waitFor(() => expect(screen.getByTestId('profile-name').textContent).toBe('bob'));
    expect(backend.argsOf('open_profile')).toEqual([{ id: 'id-bob' }]);
  });

  it('offers "Create another profile" and can cancel back to the app', async () => {
    start({ profiles: ['alice'] });
    await fireEvent.click(await screen.findByTestId('profile-switcher'));
    await fireEvent.click(screen.getByTestId('profile-create'));
    expect((await screen.findByTestId('onboarding')).textContent).toContain('Create another profile');
    await fireEvent.click(screen.getByTestId('onboarding-cancel'));
    expect(await screen.findByTestId('sidebar')).toBeTruthy();
  });

  it('lets the user choose a profile when none is open', async () => {
    const backend = start({ profiles: ['alice', 'bob'], active: null });
    const buttons = await screen.findAllByTestId('profile-choose');
    await fireEvent.click(buttons[1]!);
    expect(await screen.findByTestId('sidebar')).toBeTruthy();
    expect(backend.argsOf('open_profile')).toEqual([{ id: 'id-bob' }]);
  });

  it('filters chats with the search box', async () => {
    start({ profiles: ['alice'], chats: [makeChat('bob'), makeChat('carol')] });
    const search = await screen.findByTestId('search-input');
    await waitFor(() => expect(screen.getByTestId('sidebar').textContent).toContain('carol'));
    await fireEvent.input(search, { target: { value: 'CAR' } });
    const lists = within(screen.getByTestId('sidebar'));
    expect(lists.queryByText(/bob/)).toBeNull();
    expect(lists.getAllByText(/carol/).length).toBeGreaterThan(0);
    await fireEvent.input(search, { target: { value: 'zed' } });
    expect(screen.getByTestId('search-empty').textContent).toContain('zed');
  });

  it('focuses search with Ctrl+K and the new-chat box with Ctrl+N', async () => {
    start({ profiles: ['alice'] });
    const search = await screen.findByTestId('search-input');
    await fireEvent.keyDown(window, { key: 'k', ctrlKey: true });
    await waitFor(() => expect(document.activeElement).toBe(search));
    await fireEvent.keyDown(window, { key: 'n', metaKey: true });
    await waitFor(() => expect(document.activeElement).toBe(screen.getByTestId('new-chat-input')));
  });
});

describe('keyboard', () => {
  it('lists the shortcuts on Ctrl+/, opens Settings on Ctrl+, and moves between chats with Alt+arrows', async () => {
    start({ profiles: ['alice'], chats: [makeChat('bob'), makeChat('carol')] });
    await waitFor(() => expect(screen.getByTestId('sidebar').textContent).toContain('carol'));

    await fireEvent.keyDown(window, { key: '/', ctrlKey: true });
    const dialog = await screen.findByTestId('shortcuts-dialog');
    expect(dialog.textContent).toContain('Find in the open chat');
    await fireEvent.keyDown(window, { key: 'Escape' });
    await waitFor(() => expect(screen.queryByTestId('shortcuts-dialog')).toBeNull());

    await fireEvent.keyDown(window, { key: 'ArrowDown', altKey: true });
    await waitFor(() => expect(screen.getByTestId('conversation-peer').textContent).toBe('bob'));
    await fireEvent.keyDown(window, { key: 'ArrowDown', altKey: true });
    await waitFor(() => expect(screen.getByTestId('conversation-peer').textContent).toBe('carol'));
    // Ready to type to carol.
    await waitFor(() => expect(document.activeElement?.id).toBe('compose-input'));
    await fireEvent.keyDown(window, { key: 'ArrowUp', altKey: true });
    await waitFor(() => expect(screen.getByTestId('conversation-peer').textContent).toBe('bob'));

    await fireEvent.keyDown(window, { key: ',', ctrlKey: true });
    expect(await screen.findByTestId('settings-dialog')).toBeTruthy();
  });
});

describe('events', () => {
  it('shows the relay connection state as it changes', async () => {
    start({ profiles: ['alice'], connection: 'connecting' });
    const dot = await screen.findByTestId('connection-state');
    await waitFor(() => expect(dot.dataset.state).toBe('connecting'));
    await emit('magpie://event', { type: 'connection', state: 'offline' });
    await waitFor(() => expect(dot.dataset.state).toBe('offline'));
    expect(dot.getAttribute('aria-label')).toMatch(/not reachable/);
  });

  it('refreshes chats and requests once for a burst of events', async () => {
    const backend = start({ profiles: ['alice'] });
    await screen.findByTestId('sidebar');
    await waitFor(() => expect(backend.count('chats')).toBe(1));
    backend.state.chats = [makeChat('dora')];
    await emit('magpie://event', { type: 'request_received', peer: 'dora', fingerprint: 'ab', key_changed: false });
    await emit('magpie://event', { type: 'session_established', peer: 'dora', rekey: false });
    await emit('magpie://event', { type: 'handshake_progress', peer: 'dora', step: 'wrap' });
    await waitFor(() => expect(screen.getByTestId('sidebar').textContent).toContain('dora'));
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(backend.count('chats')).toBe(2);
    expect(backend.count('requests')).toBe(2);
  });
});

describe('settings', () => {
  async function openSettings(options: FakeOptions = {}) {
    const backend = start({ profiles: ['alice'], ...options });
    await fireEvent.click(await screen.findByTestId('settings-button'));
    return { backend, dialog: await screen.findByTestId('settings-dialog') };
  }

  it('shows the identity with grouped fingerprints and the local relay', async () => {
    await openSettings();
    expect(screen.getByTestId('settings-fingerprint').textContent).toBe(
      'aa11 bb22 cc33 dd44 aa11 bb22 cc33 dd44 aa11 bb22 cc33 dd44 aa11 bb22 cc33 dd44',
    );
    expect(screen.getByTestId('settings-relay-url').textContent).toContain('(local relay on this computer)');
    expect(screen.getByTestId('settings-key-store').textContent).toContain('Secret Service (GNOME Keyring)');
    expect(document.activeElement).toBe(screen.getByTestId('settings-theme'));
  });

  it('saves the theme and applies it to the page', async () => {
    const { backend } = await openSettings();
    expect(document.documentElement.dataset.theme).toBeUndefined();
    await fireEvent.change(screen.getByTestId('settings-theme'), { target: { value: 'dark' } });
    await waitFor(() => expect(document.documentElement.dataset.theme).toBe('dark'));
    expect(backend.argsOf('save_settings')).toEqual([{ settings: { theme: 'dark', notifications: true, lock_after_minutes: 15, keep_running_in_tray: false } }]);
    await fireEvent.click(screen.getByTestId('settings-notifications'));
    await waitFor(() => expect(backend.count('save_settings')).toBe(2));
    expect(backend.argsOf('save_settings')[1]).toEqual({
      settings: { theme: 'dark', notifications: false, lock_after_minutes: 15, keep_running_in_tray: false },
    });
  });

  it('applies the saved theme at start', async () => {
    start({ profiles: ['alice'], settings: { theme: 'light', notifications: true, lock_after_minutes: 15, keep_running_in_tray: false } });
    await screen.findByTestId('sidebar');
    await waitFor(() => expect(document.documentElement.dataset.theme).toBe('light'));
  });

  it('deletes the profile only after the username is typed, then returns to onboarding', async () => {
    const { backend } = await openSettings();
    await fireEvent.click(screen.getByTestId('settings-delete'));
    const ok = screen.getByTestId('confirm-ok') as HTMLButtonElement;
    expect(ok.disabled).toBe(true);
    expect(document.activeElement).toBe(screen.getByTestId('confirm-input'));
    await fireEvent.input(screen.getByTestId('confirm-input'), { target: { value: 'alic' } });
    expect(ok.disabled).toBe(true);
    await fireEvent.click(ok);
    expect(backend.count('delete_profile')).toBe(0);
    await fireEvent.input(screen.getByTestId('confirm-input'), { target: { value: 'alice' } });
    expect(ok.disabled).toBe(false);
    await fireEvent.click(ok);
    await screen.findByTestId('onboarding');
    expect(backend.argsOf('delete_profile')).toEqual([{ id: 'id-alice' }]);
    expect(screen.queryByTestId('settings-dialog')).toBeNull();
  });

  it('Escape closes only the confirmation on top of Settings', async () => {
    await openSettings();
    screen.getByTestId('settings-delete').focus();
    await fireEvent.click(screen.getByTestId('settings-delete'));
    await fireEvent.keyDown(window, { key: 'Escape' });
    expect(screen.queryByTestId('confirm-dialog')).toBeNull();
    expect(screen.getByTestId('settings-dialog')).toBeTruthy();
    expect(document.activeElement).toBe(screen.getByTestId('settings-delete'));
    await fireEvent.keyDown(window, { key: 'Escape' });
    expect(screen.queryByTestId('settings-dialog')).toBeNull();
  });
});
