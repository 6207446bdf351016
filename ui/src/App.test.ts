import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import App from './App.svelte';
import type { AppInfo } from './lib/ipc';

function answer(overrides: Partial<AppInfo['credential_store']> = {}): AppInfo {
  return {
    name: 'magpie-desktop',
    version: '9.8.7',
    data_dir: '/tmp/magpie-test-data',
    credential_store: { backend: 'Secret Service', available: true, problem: null, ...overrides },
  };
}

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('first screen', () => {
  it('shows where keys will be kept and the version from Rust', async () => {
    mockIPC(() => answer());
    render(App);
    expect(await screen.findByTestId('credential-backend')).toHaveProperty('textContent', 'Secret Service');
    expect((await screen.findByTestId('about-button')).textContent).toContain('v9.8.7');
  });

  it('explains an unavailable credential store instead of crashing', async () => {
    mockIPC(() => answer({ available: false, problem: 'No keyring service is running.' }));
    render(App);
    const status = screen.getByTestId('credential-status');
    await screen.findByText(/Secret Service is not available/);
    expect(status.textContent).toContain('No keyring service is running.');
  });

  it('shows a sentence, not JSON, when the backend fails', async () => {
    mockIPC(() => {
      throw { code: 'internal', message: 'The credential store check stopped.' };
    });
    render(App);
    const status = screen.getByTestId('credential-status');
    await screen.findByText(/internal problem/);
    expect(status.textContent).not.toContain('{');
  });

  it('opens About with the data folder and closes it with Escape', async () => {
    mockIPC(() => answer());
    render(App);
    await fireEvent.click(await screen.findByTestId('about-button'));
    expect((await screen.findByTestId('about-data-dir')).textContent).toBe('/tmp/magpie-test-data');
    expect(document.activeElement).toBe(screen.getByTestId('about-close'));
    await fireEvent.keyDown(window, { key: 'Escape' });
    expect(screen.queryByTestId('about-dialog')).toBeNull();
  });
});
