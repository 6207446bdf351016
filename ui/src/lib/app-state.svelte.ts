// The app's reactive state: what the shell shows, loaded from the backend and kept fresh by its events.
import { transfers } from './transfers.svelte';
import { getContext, setContext } from 'svelte';
import {
  appInfo,
  chats as fetchChats,
  connectionState,
  getSettings,
  identity as fetchIdentity,
  listProfiles,
  MagpieError,
  onEvent,
  openProfile,
  requests as fetchRequests,
  saveSettings,
  type AppInfo,
  type ChatSummary,
  type ConnectionState,
  type IdentityView,
  type MessageItem,
  type ProfilesView,
  type RequestsView,
  type Settings,
  type UiEvent,
} from './ipc';
import { describeError } from './errors';
import { moment } from './perf';

export type EventListener = (event: UiEvent) => void;

/** What the shell shows of the open profile, each part loaded or failed on its own. */
type ProfileState = [
  PromiseSettledResult<ChatSummary[]>,
  PromiseSettledResult<RequestsView>,
  PromiseSettledResult<ConnectionState>,
];

/** Events after which the chat list or the requests may have changed. */
const REFRESHING_EVENTS: ReadonlySet<UiEvent['type']> = new Set([
  'message',
  'request_received',
  'request_declined',
  'session_established',
  'key_changed',
  'delivery_changed',
  'handshake_failed',
  // A chat's count of discarded forgeries went up: its security notice shows it.
  'rejected',
]);

/** How long to gather a burst of events into one refresh. */
export const REFRESH_DELAY_MS = 50;

/** A message to open a chat at: a new object each time, so opening the same result again scrolls to it again. */
export interface MessageFocus {
  peer: string;
  id: string;
  cursor: number;
}

export class AppState {
  info = $state<AppInfo | null>(null);
  /** Why `info` could not be read (a sentence). */
  infoError = $state<string | null>(null);
  profiles = $state<ProfilesView>({ profiles: [], active: null, locked: null });
  identity = $state<IdentityView | null>(null);
  chats = $state<ChatSummary[]>([]);
  requests = $state<RequestsView>({ incoming: [], outgoing: [] });
  connection = $state<ConnectionState>('connecting');
  selectedPeer = $state<string | null>(null);
  /** A message the conversation should open at (a search result), for the selected chat. */
  focus = $state.raw<MessageFocus | null>(null);
  settings = $state<Settings>({
    theme: 'system',
    notifications: true,
    lock_after_minutes: 15,
    keep_running_in_tray: false,
  });
  /** Peers whose handshake is under way, with the last step reported. */
  handshakes = $state<Record<string, string>>({});
  /** The first load finished (successfully or not). */
  loaded = $state(false);
  /** The profiles could not be listed: the app cannot start (a sentence). */
  loadError = $state<string | null>(null);
  /** Something went wrong that the user should know about, but the app goes on (a sentence). */
  notice = $state<string | null>(null);

  /** The chat shown in the conversation pane, if it is in the list. */
  selectedChat = $derived(this.chats.find((chat) => chat.peer === this.selectedPeer) ?? null);
  hasProfile = $derived(this.profiles.active !== null && this.identity !== null);

  #listeners = new Set<EventListener>();
  /** Counts the times the window locked: what a load started before the last lock read must not be shown. */
  #locks = 0;
  #unlisten: (() => void) | null = null;
  #refreshTimer: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;

  /** Reads everything the shell shows. Safe to call again (after creating, opening or deleting a profile). */
  async load(): Promise<void> {
    const locks = this.#locks;
    // `identity` first: at start it reopens the profile that was open last time, which `listProfiles` then reports.
    let reopened: IdentityView | null = null;
    let reopenError: unknown = null;
    try {
      reopened = await fetchIdentity();
      moment('identity');
    } catch (error) {
      reopenError = error;
    }
    // A reopened profile's chats load alongside, not after: one round trip less before the list is drawn.
    const profileState = reopened === null ? null : this.#fetchProfileState();
    // The app's info asks the credential store (a D-Bus round trip): shown when it comes, not waited for.
    void appInfo().then(
      (info) => {
        this.info = info;
        this.infoError = null;
      },
      (error: unknown) => (this.infoError = describeError(error)),
    );
    const [profiles, settings] = await Promise.allSettled([listProfiles(), getSettings()]);
    // Locked meanwhile: what was read goes unshown; the lock screen (#lock) shows instead.
    if (locks !== this.#locks) {
      this.loaded = true;
      return;
    }
    if (settings.status === 'fulfilled') this.settings = settings.value;
    if (profiles.status === 'rejected') {
      this.loadError = describeError(profiles.reason);
      this.loaded = true;
      return;
    }
    this.loadError = null;
    this.profiles = profiles.value;
    moment('profiles');
    // A locked profile is not an error: `profiles.locked` puts the lock screen up.
    if (reopenError !== null && !isLocked(reopenError)) this.notice = describeError(reopenError);
    if (profiles.value.active === null || reopened === null || profileState === null) {
      this.#clearProfileState();
    } else {
      this.#setIdentity(reopened);
      const state = await profileState;
      if (locks !== this.#locks) {
        this.loaded = true;
        return;
      }
      this.#applyProfileState(state);
    }
    this.loaded = true;
    moment('chats');
  }

  /** Re-reads the chat list and the requests. */
  async refresh(): Promise<void> {
    if (!this.identity) return;
    const locks = this.#locks;
    const [chats, requests] = await Promise.allSettled([fetchChats(), fetchRequests()]);
    if (locks !== this.#locks) return;
    if (chats.status === 'fulfilled') this.chats = chats.value;
    if (requests.status === 'fulfilled') this.requests = requests.value;
    const failed = [chats, requests].find((result) => result.status === 'rejected');
    if (failed) this.notice = describeError(failed.reason);
  }

  /** Refreshes once after a burst of calls. */
  scheduleRefresh(): void {
    if (this.#refreshTimer !== null || this.#stopped) return;
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = null;
      void this.refresh();
    }, REFRESH_DELAY_MS);
  }

  /** Switches to another profile on this computer. Throws a MagpieError when it cannot be opened. */
  async switchProfile(id: string): Promise<void> {
    const locks = this.#locks;
    let opened: IdentityView;
    try {
      opened = await openProfile(id);
    } catch (error) {
      if (!isLocked(error)) throw error;
      // It waits behind the lock screen; the open profile, if any, stays open.
      this.profiles = await listProfiles();
      return;
    }
    // The window locked meanwhile: the lock screen stays (the unlock loads what is open then).
    if (locks !== this.#locks) return;
    this.selectedPeer = null;
    this.#setIdentity(opened);
    try {
      this.profiles = await listProfiles();
    } catch {
      this.profiles = { ...this.profiles, active: opened.profile_id };
    }
    this.handshakes = {};
    await this.#loadProfileState();
  }

  /** Saves the settings; the state shows what the backend stored. */
  async updateSettings(settings: Settings): Promise<void> {
    this.settings = await saveSettings(settings);
  }

  select(peer: string | null): void {
    this.selectedPeer = peer;
    this.focus = null;
  }

  /** Opens the chat with `peer` at `message` (a search result). */
  openAt(peer: string, message: MessageItem): void {
    if (message.cursor === null) {
      this.select(peer);
      return;
    }
    this.selectedPeer = peer;
    this.focus = { peer, id: message.id, cursor: message.cursor };
  }

  /** Lets other parts of the UI (the conversation) see every backend event. Returns the unsubscribe function. */
  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts following the backend's events. */
  async start(): Promise<void> {
    this.#stopped = false;
    const unlisten = await onEvent((event) => this.handleEvent(event));
    if (this.#stopped) unlisten();
    else this.#unlisten = unlisten;
  }

  stop(): void {
    this.#stopped = true;
    this.#unlisten?.();
    this.#unlisten = null;
    if (this.#refreshTimer !== null) clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
    this.#listeners.clear();
  }

  handleEvent(event: UiEvent): void {
    transfers.handle(event);
    switch (event.type) {
      case 'connection':
        this.connection = event.state;
        break;
      case 'locked':
        this.#lock();
        break;
      case 'open_chat':
        if (this.identity) this.select(event.peer);
        break;
      case 'notice':
        this.notice = event.message;
        break;
      case 'handshake_progress':
        this.handshakes = { ...this.handshakes, [event.peer]: event.step };
        break;
      case 'session_established':
      case 'handshake_failed':
      case 'request_declined': {
        const { [event.peer]: _, ...rest } = this.handshakes;
        this.handshakes = rest;
        break;
      }
    }
    if (REFRESHING_EVENTS.has(event.type)) this.scheduleRefresh();
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        console.error('An event listener failed', error);
      }
    }
  }

  async #loadProfileState(): Promise<void> {
    const locks = this.#locks;
    const state = await this.#fetchProfileState();
    if (locks === this.#locks) this.#applyProfileState(state);
  }

  #fetchProfileState(): Promise<ProfileState> {
    return Promise.allSettled([fetchChats(), fetchRequests(), connectionState()]);
  }

  #applyProfileState([chats, requests, connection]: ProfileState): void {
    this.chats = chats.status === 'fulfilled' ? chats.value : [];
    this.requests = requests.status === 'fulfilled' ? requests.value : { incoming: [], outgoing: [] };
    this.connection = connection.status === 'fulfilled' ? connection.value : 'offline';
    const failed = [chats, requests, connection].find((result) => result.status === 'rejected');
    this.notice = failed ? describeError(failed.reason) : null;
    if (this.selectedPeer && !this.chats.some((chat) => chat.peer === this.selectedPeer)) this.selectedPeer = null;
  }

  /** The open profile; what the window knew of another profile's chats (a search result, transfers) goes. */
  #setIdentity(identity: IdentityView | null): void {
    if (identity?.profile_id !== this.identity?.profile_id) {
      this.focus = null;
      transfers.clear();
    }
    this.identity = identity;
  }

  /** The window was locked: what it showed goes, and the lock screen comes up. */
  #lock(): void {
    this.#locks += 1;
    const identity = this.identity;
    if (identity) {
      this.profiles = {
        ...this.profiles,
        locked: { profile_id: identity.profile_id, username: identity.username, open: true },
      };
    }
    this.notice = null;
    this.#clearProfileState();
    // The backend says which profile is behind the lock (the window may not have known it yet, at start).
    const locks = this.#locks;
    void listProfiles()
      .then((profiles) => {
        if (locks === this.#locks && profiles.locked) this.profiles = profiles;
      })
      .catch(() => {});
  }

  #clearProfileState(): void {
    this.#setIdentity(null);
    this.chats = [];
    this.requests = { incoming: [], outgoing: [] };
    this.connection = 'connecting';
    this.selectedPeer = null;
    this.handshakes = {};
  }
}

function isLocked(error: unknown): boolean {
  return error instanceof MagpieError && error.code === 'locked';
}

export function createAppState(): AppState {
  return new AppState();
}

const CONTEXT_KEY = Symbol('magpie-app-state');

/** Makes the state available to descendants (call in App.svelte). */
export function provideAppState(state: AppState): AppState {
  return setContext(CONTEXT_KEY, state);
}

/** The app state set by App.svelte, e.g. `getAppState().subscribe(handler)` in the conversation. */
export function getAppState(): AppState {
  return getContext<AppState>(CONTEXT_KEY);
}
