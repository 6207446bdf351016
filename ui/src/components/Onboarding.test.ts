import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
import Onboarding from './Onboarding.svelte';
import { CA_FINGERPRINT, fakeBackend, makeIdentity, type FakeOptions } from '../test/fake-backend';
import type { AppInfo } from '../lib/ipc';

const info: AppInfo = {
  name: 'magpie-desktop',
  version: '1.0.0',
  data_dir: '/tmp/d',
  credential_store: { backend: 'Secret Service', available: true, problem: null },
};

function setup(options: FakeOptions = {}) {
  const backend = fakeBackend(options);
  mockIPC(backend.handler, { shouldMockEvents: true });
  const onFinish = vi.fn();
  render(Onboarding, { info, onFinish });
  return { backend, onFinish };
}

async function typeName(value: string) {
  await fireEvent.input(screen.getByTestId('onboarding-username'), { target: { value } });
}

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('Onboarding', () => {
  it('creates a profile on the local relay, shows progress, then where the key is stored', async () => {
    let finish: () => void = () => {};
    const { backend, onFinish } = setup({
      overrides: {
        // Answers only when the test says so, so the progress can be seen meanwhile.
        create_profile: (args) =>
          new Promise((resolve) => {
            finish = () => resolve(makeIdentity(String(args.username)));
          }),
      },
    });

    expect((screen.getByTestId('onboarding-relay-local') as HTMLInputElement).checked).toBe(true);
    await typeName('Alice');
    expect((screen.getByTestId('onboarding-username') as HTMLInputElement).value).toBe('alice');
    await fireEvent.click(screen.getByTestId('onboarding-create'));

    const progress = await screen.findByTestId('onboarding-progress');
    await emit('magpie://onboarding', 'generating_key');
    await waitFor(() => expect(progress.querySelector('li.current')?.textContent).toContain('Generating your RSA-3072 key…'));
    expect(progress.querySelector('li.passed')?.textContent).toContain('Starting the local relay');

    finish();
    const keyStore = await screen.findByTestId('onboarding-key-store');
    expect(keyStore.textContent).toContain('Your private key is stored in Secret Service (GNOME Keyring)');
    expect(screen.getByTestId('onboarding-fingerprint').textContent).toMatch(/^aa11 bb22 cc33 dd44 /);
    expect(backend.argsOf('create_profile')[0]).toEqual({ username: 'alice', relay: { kind: 'local' } });

    await fireEvent.click(screen.getByTestId('onboarding-start'));
    expect(onFinish).toHaveBeenCalledWith(expect.objectContaining({ username: 'alice' }));
  });

  it('explains the username rule and does not create an invalid name', async () => {
    const { backend } = setup();
    await typeName('al');
    await fireEvent.click(screen.getByTestId('onboarding-create'));
    expect(screen.getByTestId('onboarding').textContent).toContain('at least 3 characters');
    expect(screen.getByTestId('onboarding').textContent).toContain('lower-case letters a–z');
    await typeName('al ice');
    expect(screen.getByTestId('onboarding-username').getAttribute('aria-invalid')).toBe('true');
    expect(backend.count('create_profile')).toBe(0);
  });

  it('checks a remote relay and needs its fingerprint confirmed before registering', async () => {
    const { backend } = setup();
    await typeName('bob');
    await fireEvent.click(screen.getByTestId('onboarding-relay-remote'));
    await fireEvent.input(screen.getByTestId('onboarding-relay-url'), {
      target: { value: 'https://relay.example.org:8443' },
    });
    await fireEvent.click(screen.getByTestId('onboarding-check-relay'));

    const fingerprint = await screen.findByTestId('onboarding-ca-fingerprint');
    expect(fingerprint.textContent).toBe('0123 4567 89ab cdef '.repeat(4).trim());
    expect(screen.getByTestId('onboarding-ca-subject').textContent).toBe('CN=Example Relay CA');
    expect(screen.getByTestId('onboarding').textContent).toContain('Only continue if this matches');
    expect(backend.argsOf('probe_relay')).toEqual([{ url: 'https://relay.example.org:8443' }]);

    await fireEvent.click(screen.getByTestId('onboarding-create'));
    expect(screen.getByTestId('onboarding-error').textContent).toMatch(/Confirm that the relay’s fingerprint/);
    expect(backend.count('create_profile')).toBe(0);

    await fireEvent.click(screen.getByTestId('onboarding-confirm-ca'));
    await fireEvent.click(screen.getByTestId('onboarding-create'));
    await screen.findByTestId('onboarding-done');
    expect(backend.argsOf('create_profile')).toEqual([
      {
        username: 'bob',
        relay: { kind: 'remote', url: 'https://relay.example.org:8443/', ca_fingerprint: CA_FINGERPRINT },
      },
    ]);
  });

  it('forgets a confirmed fingerprint when the address changes', async () => {
    setup();
    await fireEvent.click(screen.getByTestId('onboarding-relay-remote'));
    const url = screen.getByTestId('onboarding-relay-url');
    await fireEvent.input(url, { target: { value: 'https://a.example' } });
    await fireEvent.click(screen.getByTestId('onboarding-check-relay'));
    await fireEvent.click(await screen.findByTestId('onboarding-confirm-ca'));
    await fireEvent.input(url, { target: { value: 'https://b.example' } });
    expect(screen.queryByTestId('onboarding-ca-fingerprint')).toBeNull();
  });

  it('refuses a malformed relay address without asking the backend', async () => {
    const { backend } = setup();
    await fireEvent.click(screen.getByTestId('onboarding-relay-remote'));
    await fireEvent.input(screen.getByTestId('onboarding-relay-url'), { target: { value: 'relay example' } });
    await fireEvent.click(screen.getByTestId('onboarding-check-relay'));
    expect(screen.getByTestId('onboarding-probe-error').textContent).toMatch(/not a web address/);
    expect(backend.count('probe_relay')).toBe(0);
  });

  it('shows an unreachable relay as a sentence naming it', async () => {
    setup({
      overrides: {
        probe_relay: () => {
          throw { code: 'relay_unreachable', message: 'connect error: refused' };
        },
      },
    });
    await fireEvent.click(screen.getByTestId('onboarding-relay-remote'));
    await fireEvent.input(screen.getByTestId('onboarding-relay-url'), { target: { value: 'https://down.example' } });
    await fireEvent.click(screen.getByTestId('onboarding-check-relay'));
    const problem = await screen.findByTestId('onboarding-probe-error');
    expect(problem.textContent).toContain('The relay at https://down.example is not reachable.');
    expect(problem.textContent).not.toContain('refused');
  });

  it('says a taken name in a sentence and lets the user choose another', async () => {
    const { backend } = setup({
      overrides: {
        create_profile: () => {
          throw { code: 'name_taken', message: 'the name alice is registered already' };
        },
      },
    });
    await typeName('alice');
    await fireEvent.click(screen.getByTestId('onboarding-create'));
    const error = await screen.findByTestId('onboarding-error');
    expect(error.textContent).toBe('That name is taken on this relay; choose another.');
    await waitFor(() => expect(document.activeElement).toBe(screen.getByTestId('onboarding-username')));
    expect(backend.count('create_profile')).toBe(1);
  });
});

describe('Onboarding without a credential store', () => {
  it('warns before the user tries to create a key', () => {
    mockIPC(fakeBackend().handler, { shouldMockEvents: true });
    render(Onboarding, {
      info: { ...info, credential_store: { backend: 'Secret Service', available: false, problem: 'No keyring is running.' } },
      onFinish: vi.fn(),
    });
    const warning = screen.getByTestId('onboarding-credential-warning');
    expect(warning.textContent).toContain('Secret Service is not available.');
    expect(warning.textContent).toContain('No keyring is running.');
  });
});

describe('Onboarding keyboard', () => {
  it('checks the relay when Enter is pressed in its address', async () => {
    const backend = fakeBackend();
    mockIPC(backend.handler, { shouldMockEvents: true });
    render(Onboarding, { info, onFinish: vi.fn() });
    await typeName('carol');
    await fireEvent.click(screen.getByTestId('onboarding-relay-remote'));
    const url = screen.getByTestId('onboarding-relay-url');
    await fireEvent.input(url, { target: { value: 'https://relay.example.org' } });
    await fireEvent.keyDown(url, { key: 'Enter' });
    await screen.findByTestId('onboarding-ca-fingerprint');
    expect(backend.count('probe_relay')).toBe(1);
    expect(backend.count('create_profile')).toBe(0);
  });
});
