import { afterEach, describe, expect, it, vi } from 'vitest';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
import { createAppState, REFRESH_DELAY_MS } from './app-state.svelte';
import { fakeBackend, makeChat, type FakeOptions } from '../test/fake-backend';

function setup(options: FakeOptions = {}) {
  const backend = fakeBackend(options);
  mockIPC(backend.handler, { shouldMockEvents: true });
  return { backend, state: createAppState() };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, REFRESH_DELAY_MS * 2));

afterEach(() => clearMocks());

describe('AppState', () => {
  it('loads everything of the open profile', async () => {
    const { backend, state } = setup({ profiles: ['alice'], chats: [makeChat('bob')], connection: 'offline' });
    await state.load();
    expect(state.identity?.username).toBe('alice');
    expect(state.chats.map((c) => c.peer)).toEqual(['bob']);
    expect(state.connection).toBe('offline');
    expect(state.hasProfile).toBe(true);
    expect(backend.count('requests')).toBe(1);
  });

  it('asks nothing profile-specific when no profile is open', async () => {
    const { backend, state } = setup();
    await state.load();
    expect(state.hasProfile).toBe(false);
    // One `identity` call: it is what reopens last time's profile at start.
    expect(backend.count('identity')).toBe(1);
    expect(backend.count('chats')).toBe(0);
  });

  it('coalesces a burst of events into one refresh and passes every event on', async () => {
    const { backend, state } = setup({ profiles: ['alice'] });
    await state.load();
    await state.start();
    const seen = vi.fn();
    state.subscribe(seen);
    backend.state.chats = [makeChat('eve')];
    for (let i = 0; i < 5; i++) {
      await emit('magpie://event', { type: 'delivery_changed', peer: 'eve', id: String(i), delivery: 'sent' });
    }
    await settle();
    expect(backend.count('chats')).toBe(2);
    expect(state.chats.map((c) => c.peer)).toEqual(['eve']);
    expect(seen).toHaveBeenCalledTimes(5);
    state.stop();
  });

  it('does not refresh for events that change no list', async () => {
    const { backend, state } = setup({ profiles: ['alice'] });
    await state.load();
    await state.start();
    await emit('magpie://event', { type: 'connection', state: 'online' });
    await settle();
    expect(backend.count('chats')).toBe(1);
    // A discarded forgery changes its chat's security notice.
    await emit('magpie://event', { type: 'rejected', peer: 'x', step: false, reason: 'tampered' });
    await settle();
    expect(backend.count('chats')).toBe(2);
    expect(state.connection).toBe('online');
    state.stop();
  });

  it('tracks handshakes under way until they end', async () => {
    const { state } = setup({ profiles: ['alice'] });
    await state.load();
    state.handleEvent({ type: 'handshake_progress', peer: 'bob', step: 'wrap_key' });
    expect(state.handshakes).toEqual({ bob: 'wrap_key' });
    state.handleEvent({ type: 'handshake_failed', peer: 'bob', reason: 'bad signature' });
    expect(state.handshakes).toEqual({});
    state.stop();
  });

  it('switches profile and forgets the selected chat', async () => {
    const { backend, state } = setup({ profiles: ['alice', 'bob'], chats: [makeChat('carol')] });
    await state.load();
    state.select('carol');
    await state.switchProfile('id-bob');
    expect(backend.argsOf('open_profile')).toEqual([{ id: 'id-bob' }]);
    expect(state.identity?.username).toBe('bob');
    expect(state.profiles.active).toBe('id-bob');
    expect(state.selectedPeer).toBeNull();
  });

  it('keeps going with a notice when the chats cannot be read', async () => {
    const { state } = setup({
      profiles: ['alice'],
      overrides: {
        chats: () => {
          throw { code: 'profile', message: 'history is in use' };
        },
      },
    });
    await state.load();
    expect(state.hasProfile).toBe(true);
    expect(state.chats).toEqual([]);
    expect(state.notice).toMatch(/History is in use\./);
  });
});
