// A stand-in for the Rust backend in tests: pass `backend.handler` to mockIPC. It keeps a little state
// (profiles, settings) so flows like create → open → delete behave, and records every call.
import type {
  AppInfo,
  ChatSummary,
  ConnectionState,
  IdentityView,
  LockedView,
  ProfileSummary,
  RequestsView,
  Settings,
} from '../lib/ipc';

export type Args = Record<string, unknown>;
export type Override = (args: Args) => unknown;

export const CA_FINGERPRINT = '0123456789abcdef'.repeat(4);

export function makeIdentity(username: string, id = `id-${username}`): IdentityView {
  return {
    profile_id: id,
    username,
    fingerprint: 'aa11bb22cc33dd44'.repeat(4),
    certificate_subject: `CN=${username}`,
    certificate_serial: '1f2e3d',
    // i64 in Rust: the generated type may be number or bigint; JSON carries a number.
    valid_from: 1_767_225_600 as never,
    valid_until: 1_798_761_600 as never,
    relay_url: 'http://127.0.0.1:47800',
    relay_ca_fingerprint: CA_FINGERPRINT,
    local_relay: true,
    key_store: 'Secret Service (GNOME Keyring)',
  };
}

export function makeChat(peer: string, overrides: Partial<ChatSummary> = {}): ChatSummary {
  return {
    peer,
    verified: false,
    key_changed: false,
    new_fingerprint: null,
    has_session: true,
    session_coming: false,
    discarded: null,
    last_message: null,
    unread: 0,
    last_activity: 1_767_225_600,
    ...overrides,
  };
}

export interface FakeOptions {
  /** Usernames of existing profiles; the first is open unless `active` says otherwise. */
  profiles?: string[];
  active?: string | null;
  chats?: ChatSummary[];
  requests?: RequestsView;
  settings?: Settings;
  connection?: ConnectionState;
  info?: Partial<AppInfo>;
  overrides?: Record<string, Override>;
  /** The open (or first) profile's lock passphrase; with `locked`, it starts behind the lock screen. */
  lockPassphrase?: string;
  locked?: boolean;
}

export function fakeBackend(options: FakeOptions = {}) {
  const calls: { cmd: string; args: Args }[] = [];
  const identities = new Map<string, IdentityView>();
  for (const name of options.profiles ?? []) identities.set(`id-${name}`, makeIdentity(name));
  const state = {
    active:
      options.active !== undefined
        ? options.active && `id-${options.active}`
        : options.profiles?.[0]
          ? `id-${options.profiles[0]}`
          : null,
    chats: options.chats ?? [],
    requests: options.requests ?? { incoming: [], outgoing: [] },
    settings: options.settings ?? { theme: 'system', notifications: true, lock_after_minutes: 15, keep_running_in_tray: false },
    connection: options.connection ?? 'online',
    overrides: { ...options.overrides } as Record<string, Override>,
    lockPassphrase: options.lockPassphrase ?? null,
    locked: null as LockedView | null,
    wrongPassphrases: 0,
  };
  if (options.locked && state.active) {
    state.locked = { profile_id: state.active, username: identities.get(state.active)!.username, open: false };
    state.active = null;
  }
  const info: AppInfo = {
    name: 'magpie-desktop',
    version: '9.8.7',
    data_dir: '/tmp/magpie-test-data',
    credential_store: { backend: 'Secret Service', available: true, problem: null },
    ...options.info,
  };

  function summary(identity: IdentityView): ProfileSummary {
    return {
      id: identity.profile_id,
      username: identity.username,
      relay_url: identity.relay_url,
      local_relay: identity.local_relay,
    };
  }

  function profilesView() {
    return { profiles: [...identities.values()].map(summary), active: state.active, locked: state.locked };
  }

  const refusedWhileLocked = new Set(['identity', 'chats', 'requests', 'messages', 'lock_status', 'open_profile']);

  function handler(cmd: string, raw?: unknown): unknown {
    const args = (raw ?? {}) as Args;
    calls.push({ cmd, args });
    const override = state.overrides[cmd];
    if (override) return override(args);
    if (state.locked && refusedWhileLocked.has(cmd)) throw { code: 'locked', message: 'Magpie is locked.' };
    switch (cmd) {
      case 'unlock': {
        if (!state.locked) throw { code: 'invalid_input', message: 'Magpie is not locked.' };
        if (args.passphrase !== state.lockPassphrase) {
          state.wrongPassphrases += 1;
          const wait_secs = state.wrongPassphrases >= 3 ? 2 : 0;
          throw { code: 'wrong_passphrase', message: 'That passphrase does not unlock this profile.', wait_secs };
        }
        state.wrongPassphrases = 0;
        state.active = state.locked.profile_id;
        state.locked = null;
        return identities.get(state.active);
      }
      case 'cancel_unlock':
        state.locked = null;
        return profilesView();
      case 'lock_now':
        if (!state.lockPassphrase || !state.active) throw { code: 'invalid_input', message: 'Set a passphrase first.' };
        state.locked = { profile_id: state.active, username: identities.get(state.active)!.username, open: true };
        return null;
      case 'lock_status':
        return { on: state.lockPassphrase !== null };
      case 'set_lock_passphrase':
        state.lockPassphrase = String(args.passphrase);
        return { on: true };
      case 'remove_lock_passphrase':
        state.lockPassphrase = null;
        return { on: false };
      case 'app_info':
        return info;
      case 'list_profiles':
        return profilesView();
      case 'identity':
        return state.active ? (identities.get(state.active) ?? null) : null;
      case 'open_profile': {
        const identity = identities.get(String(args.id));
        if (!identity) throw { code: 'no_profile', message: 'No such profile.' };
        state.active = identity.profile_id;
        return identity;
      }
      case 'create_profile': {
        const username = String(args.username);
        const relay = args.relay as { kind: string; url?: string; ca_fingerprint?: string };
        const identity = {
          ...makeIdentity(username),
          ...(relay.kind === 'remote'
            ? { relay_url: relay.url!, relay_ca_fingerprint: relay.ca_fingerprint!, local_relay: false }
            : {}),
        };
        identities.set(identity.profile_id, identity);
        state.active = identity.profile_id;
        return identity;
      }
      case 'delete_profile':
        identities.delete(String(args.id));
        if (state.active === args.id) state.active = null;
        return profilesView();
      case 'probe_relay':
        // As Rust answers: the address parsed, so "https://host:1" comes back as "https://host:1/".
        return { url: new URL(String(args.url)).href, ca_fingerprint: CA_FINGERPRINT, ca_subject: 'CN=Example Relay CA' };
      case 'chats':
        return state.chats;
      case 'requests':
        return state.requests;
      case 'connection_state':
        return state.connection;
      case 'get_settings':
        return state.settings;
      case 'save_settings':
        state.settings = args.settings as Settings;
        return state.settings;
      case 'messages':
        return { messages: [], has_more: false, rekeys: [] };
      default:
        return null;
    }
  }

  return {
    handler,
    calls,
    state,
    identities,
    /** Arguments of every call of `cmd`, in order. */
    argsOf(cmd: string): Args[] {
      return calls.filter((call) => call.cmd === cmd).map((call) => call.args);
    },
    count(cmd: string): number {
      return calls.filter((call) => call.cmd === cmd).length;
    },
  };
}

export type FakeBackend = ReturnType<typeof fakeBackend>;
