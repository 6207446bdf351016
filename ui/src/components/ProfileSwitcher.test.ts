import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import ProfileSwitcher from './ProfileSwitcher.svelte';
import { makeIdentity } from '../test/fake-backend';
import type { ProfilesView } from '../lib/ipc';

const profiles: ProfilesView = {
  profiles: [
    { id: 'id-alice', username: 'alice', relay_url: 'http://127.0.0.1:47800', local_relay: true },
    { id: 'id-bob', username: 'bob', relay_url: 'https://relay.example.org:8443', local_relay: false },
    { id: 'id-carol', username: 'carol', relay_url: null, local_relay: false },
  ],
  active: 'id-alice',
  locked: null,
};

function setup() {
  const onSwitch = vi.fn();
  const onCreate = vi.fn();
  render(ProfileSwitcher, { profiles, identity: makeIdentity('alice'), onSwitch, onCreate });
  return { onSwitch, onCreate, button: screen.getByTestId('profile-switcher') };
}

afterEach(() => cleanup());

describe('ProfileSwitcher', () => {
  it('lists the other profiles and switches to the chosen one', async () => {
    const { onSwitch, button } = setup();
    expect(button.getAttribute('aria-expanded')).toBe('false');
    await fireEvent.click(button);
    expect(button.getAttribute('aria-expanded')).toBe('true');
    const options = screen.getAllByTestId('profile-option');
    expect(options.map((o) => o.dataset.profileId)).toEqual(['id-bob', 'id-carol']);
    expect(options[0]!.textContent).toContain('relay.example.org:8443');
    expect(options[1]!.textContent).toContain('Not registered');
    await fireEvent.click(options[0]!);
    expect(onSwitch).toHaveBeenCalledWith('id-bob');
    expect(screen.queryByTestId('profile-menu')).toBeNull();
  });

  it('moves through the menu with arrow keys and closes with Escape, back on the button', async () => {
    const { button } = setup();
    button.focus();
    await fireEvent.keyDown(button, { key: 'ArrowDown' });
    const menu = await screen.findByTestId('profile-menu');
    expect(document.activeElement?.textContent).toContain('bob');
    await fireEvent.keyDown(menu, { key: 'ArrowUp' });
    expect(document.activeElement).toBe(screen.getByTestId('profile-create'));
    await fireEvent.keyDown(menu, { key: 'Escape' });
    expect(screen.queryByTestId('profile-menu')).toBeNull();
    expect(document.activeElement).toBe(button);
  });

  it('offers to create another profile', async () => {
    const { onCreate, onSwitch, button } = setup();
    await fireEvent.click(button);
    await fireEvent.click(screen.getByTestId('profile-create'));
    expect(onCreate).toHaveBeenCalledOnce();
    expect(onSwitch).not.toHaveBeenCalled();
  });
});
