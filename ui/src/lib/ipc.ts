// The only module that talks to the Rust backend. Everything else imports typed functions from here.
import { Channel, invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import type {
  AppInfo,
  ChatSummary,
  ConnectionState,
  DemoAttack,
  DemoRun,
  FileStatus,
  IdentityView,
  IpcErrorCode,
  LockStatus,
  MessageItem,
  MessagePage,
  OnboardingStage,
  ProfilesView,
  RelayChoice,
  RelayProbe,
  RequestsView,
  SafetyNumberView,
  SearchChat,
  SearchSummary,
  BackupDone,
  BackupProgress,
  ExportDone,
  PickedBackup,
  Settings,
  UiEvent,
} from './bindings';

export type * from './bindings';

/** A failed backend call: `code` is one of Rust's IpcErrorCode values, or 'unknown' for anything malformed. */
export class MagpieError extends Error {
  readonly code: IpcErrorCode | 'unknown';
  /** Seconds before another passphrase is taken (a `wrong_passphrase`), else null. */
  readonly waitSecs: number | null;

  constructor(code: IpcErrorCode | 'unknown', message: string, waitSecs: number | null = null) {
    super(message);
    this.name = 'MagpieError';
    this.code = code;
    this.waitSecs = waitSecs;
  }
}

// A Record keyed by the generated union: adding a code in Rust fails the type check until it is listed here.
const KNOWN_CODES: Record<IpcErrorCode, true> = {
  data_directory: true,
  internal: true,
  credential_store: true,
  invalid_input: true,
  name_taken: true,
  unknown_user: true,
  relay_unreachable: true,
  relay_ca_changed: true,
  relay: true,
  no_profile: true,
  profile: true,
  no_session: true,
  key_changed: true,
  no_request: true,
  fingerprint_mismatch: true,
  backup: true,
  locked: true,
  wrong_passphrase: true,
  unlock_wait: true,
};

function isKnownCode(value: unknown): value is IpcErrorCode {
  return typeof value === 'string' && Object.hasOwn(KNOWN_CODES, value);
}

/** Turns whatever a rejected `invoke` produced into a MagpieError. */
export function toMagpieError(raw: unknown): MagpieError {
  if (raw instanceof MagpieError) return raw;
  if (typeof raw === 'object' && raw !== null) {
    const { code, message, wait_secs: waitSecs } = raw as Record<string, unknown>;
    if (isKnownCode(code) && typeof message === 'string') {
      return new MagpieError(code, message, typeof waitSecs === 'number' ? waitSecs : null);
    }
  }
  const text = raw instanceof Error ? raw.message : String(raw);
  return new MagpieError('unknown', text);
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (raw) {
    throw toMagpieError(raw);
  }
}

/** Version, data folder and credential-store status of this installation. */
export function appInfo(): Promise<AppInfo> {
  return call<AppInfo>('app_info');
}

// --- profiles and onboarding ---

/** Every profile on this computer and the open one. */
export function listProfiles(): Promise<ProfilesView> {
  return call<ProfilesView>('list_profiles');
}

/** Fetches a remote relay's CA so the user can confirm its fingerprint before registering. */
export function probeRelay(url: string): Promise<RelayProbe> {
  return call<RelayProbe>('probe_relay', { url });
}

/** Generates the key, stores it in the credential store, registers, and opens the new profile.
 *  Progress arrives through `onOnboarding`. */
export function createProfile(username: string, relay: RelayChoice): Promise<IdentityView> {
  return call<IdentityView>('create_profile', { username, relay });
}

// --- the app lock ---

/** Unlocks the profile behind the lock screen (opening it, or the window it is open behind). A wrong passphrase
 *  rejects with code `wrong_passphrase` and `waitSecs` before the next try is taken. */
export function unlock(passphrase: string): Promise<IdentityView> {
  return call<IdentityView>('unlock', { passphrase });
}

/** Leaves the lock screen of a profile not opened yet, to choose another. */
export function cancelUnlock(): Promise<ProfilesView> {
  return call<ProfilesView>('cancel_unlock');
}

/** Locks the window now; the open profile keeps receiving behind it. Needs a passphrase set. */
export function lockNow(): Promise<void> {
  return call<void>('lock_now');
}

/** Whether the open profile has a lock passphrase. */
export function lockStatus(): Promise<LockStatus> {
  return call<LockStatus>('lock_status');
}

/** Sets the lock passphrase (`current` null), or changes it. */
export function setLockPassphrase(current: string | null, passphrase: string): Promise<LockStatus> {
  return call<LockStatus>('set_lock_passphrase', { current, passphrase });
}

/** Removes the lock; `current` must open it. */
export function removeLockPassphrase(current: string): Promise<LockStatus> {
  return call<LockStatus>('remove_lock_passphrase', { current });
}

/** Opens (switches to) a profile and connects it to its relay. */
export function openProfile(id: string): Promise<IdentityView> {
  return call<IdentityView>('open_profile', { id });
}

/** The open profile's identity, or null when none is open. */
export function identity(): Promise<IdentityView | null> {
  return call<IdentityView | null>('identity');
}

/** Deletes a profile: its credential-store entries and its data. Closes it first if open. */
export function deleteProfile(id: string): Promise<ProfilesView> {
  return call<ProfilesView>('delete_profile', { id });
}

// --- chats ---

export function connectionState(): Promise<ConnectionState> {
  return call<ConnectionState>('connection_state');
}

/** Chats of the open profile, most recent first. */
export function chats(): Promise<ChatSummary[]> {
  return call<ChatSummary[]>('chats');
}

/** A page of messages, oldest first: the last `limit` before `before` (or the newest when null). */
export function messages(peer: string, before: number | null, limit: number): Promise<MessagePage> {
  return call<MessagePage>('messages', { peer, before, limit });
}

/** Messages around the one at `cursor` (itself included), oldest first: a chat opened at a search result. */
export function messagesAround(peer: string, cursor: number, limit: number): Promise<MessagePage> {
  return call<MessagePage>('messages_around', { peer, cursor, limit });
}

/** Up to `limit` messages after `after`, oldest first (scrolling down from a search result). */
export function messagesAfter(peer: string, after: number, limit: number): Promise<MessagePage> {
  return call<MessagePage>('messages_after', { peer, after, limit });
}

// --- search ---

/**
 * Searches every chat for the words of `query`; each chat's results arrive through `onChat` as soon as that chat
 * is searched, most recently active chat first (the last may come just after the answer). A newer search cancels
 * this one.
 */
export function search(query: string, onChat: (chat: SearchChat) => void): Promise<SearchSummary> {
  const results = new Channel<SearchChat>();
  results.onmessage = onChat;
  return call<SearchSummary>('search', { query, results });
}

/** Up to `limit` results in one chat, older than `before` (the newest when null), in the answer itself. */
export function searchMore(query: string, peer: string, before: number | null, limit: number): Promise<SearchChat> {
  return call<SearchChat>('search_more', { query, peer, before, limit });
}

// --- backups and exports ---

/** Asks where to save (a native dialog) and writes a backup sealed with `passphrase`; null when the user cancels. */
export function backupNow(passphrase: string, onProgress: (p: BackupProgress) => void): Promise<BackupDone | null> {
  const progress = new Channel<BackupProgress>();
  progress.onmessage = onProgress;
  return call<BackupDone | null>('backup_now', { passphrase, progress });
}

/** Stops the backup or restore under way; it rejects with a sentence saying so. */
export function cancelBackup(): Promise<void> {
  return call<void>('cancel_backup');
}

/** Asks for a backup file (a native dialog); its name and size, or null when the user cancels. */
export function pickBackup(): Promise<PickedBackup | null> {
  return call<PickedBackup | null>('pick_backup');
}

/** Restores the picked backup as a new profile and opens it. */
export function restoreBackup(passphrase: string, onProgress: (p: BackupProgress) => void): Promise<IdentityView> {
  const progress = new Channel<BackupProgress>();
  progress.onmessage = onProgress;
  return call<IdentityView>('restore_backup', { passphrase, progress });
}

/** Asks where to export the chat with `peer` and writes it there, not encrypted; null when the user cancels. */
export function exportChat(peer: string): Promise<ExportDone | null> {
  return call<ExportDone | null>('export_chat', { peer });
}

/** Queues a message; it is in history (state "sending") when this returns. */
export function sendMessage(peer: string, text: string): Promise<MessageItem> {
  return call<MessageItem>('send_message', { peer, text });
}

/** Sends a failed message's text again as a new message; the failed one is removed. */
export function retryMessage(peer: string, id: string): Promise<MessageItem> {
  return call<MessageItem>('retry_message', { peer, id });
}

// --- files ---

/** Asks the user for a file (a native dialog) and sends it to `peer`; null when they cancel. */
export function attachFile(peer: string): Promise<MessageItem | null> {
  return call<MessageItem | null>('attach_file', { peer });
}

/** Sends the files last dropped on the window (announced by a `files_dropped` event) to `peer`. */
export function sendDropped(peer: string): Promise<MessageItem[]> {
  return call<MessageItem[]>('send_dropped', { peer });
}

/** Sends a pasted image (`data` in standard base64) to `peer` as `name`. */
export function sendPasted(peer: string, name: string, data: string): Promise<MessageItem> {
  return call<MessageItem>('send_pasted', { peer, name, data });
}

/** Where the transfer of file message `id` stands. */
export function fileStatus(id: string): Promise<FileStatus> {
  return call<FileStatus>('file_status', { id });
}

/** Asks where to save the file of message `id` (a native dialog) and saves it; false when cancelled. */
export function saveFileAs(id: string): Promise<boolean> {
  return call<boolean>('save_file_as', { id });
}

/** Opens the file of message `id` with the system's app for it. */
export function openFile(id: string): Promise<void> {
  return call<void>('open_file', { id });
}

/** The image of message `id` as a data URL, for the viewer. */
export function imageData(id: string): Promise<string> {
  return call<string>('image_data', { id });
}

/** Stops the transfer of file message `id`. */
export function cancelFile(id: string): Promise<void> {
  return call<void>('cancel_file', { id });
}

/** Downloads again a received file whose download failed or was cancelled. */
export function downloadFile(id: string): Promise<void> {
  return call<void>('download_file', { id });
}

/** Everything up to `cursor` in this chat has been seen. */
export function markRead(peer: string, cursor: number): Promise<void> {
  return call<void>('mark_read', { peer, cursor });
}

/** Deletes the chat's messages from this computer (the chat, its keys and verification stay); how many. */
export function clearChat(peer: string): Promise<number> {
  return call<number>('clear_chat', { peer });
}

// --- requests ---

/** Asks `peer` for an encrypted chat (step 1 of the handshake). */
export function startChat(peer: string): Promise<void> {
  return call<void>('start_chat', { peer });
}

export function requests(): Promise<RequestsView> {
  return call<RequestsView>('requests');
}

/** Accepts the request `requestId`, whose key the user saw as `fingerprint` (refused if that is not its key). */
export function acceptRequest(requestId: string, fingerprint: string): Promise<void> {
  return call<void>('accept_request', { requestId, fingerprint });
}

export function declineRequest(requestId: string): Promise<void> {
  return call<void>('decline_request', { requestId });
}

// --- verification ---

export function safetyNumber(peer: string): Promise<SafetyNumberView> {
  return call<SafetyNumberView>('safety_number', { peer });
}

/** Marks the peer's key `fingerprint` verified: the one whose number was on screen (during a key change this
 *  accepts the new key). Refused with 'fingerprint_mismatch' when the key changed meanwhile. */
export function markVerified(peer: string, fingerprint: string): Promise<SafetyNumberView> {
  return call<SafetyNumberView>('mark_verified', { peer, fingerprint });
}

/** Accepts the changed key `fingerprint` (the one shown) without comparing numbers; the chat becomes unverified. */
export function acceptNewKey(peer: string, fingerprint: string): Promise<void> {
  return call<void>('accept_new_key', { peer, fingerprint });
}

/** The user read the chat's security notice: its counts start again. */
export function dismissDiscarded(peer: string): Promise<void> {
  return call<void>('dismiss_discarded', { peer });
}

// --- settings ---

export function getSettings(): Promise<Settings> {
  return call<Settings>('get_settings');
}

export function saveSettings(settings: Settings): Promise<Settings> {
  return call<Settings>('save_settings', { settings });
}

// --- events ---

/** Follows the open profile's events; returns the function that stops following. */
export function onEvent(handler: (event: UiEvent) => void): Promise<UnlistenFn> {
  return listen<UiEvent>('magpie://event', (event) => handler(event.payload));
}

/** Follows onboarding progress (key generation, storing, registering). */
export function onOnboarding(handler: (stage: OnboardingStage) => void): Promise<UnlistenFn> {
  return listen<OnboardingStage>('magpie://onboarding', (event) => handler(event.payload));
}

// --- handshake demo ---

/** Runs the seven-step handshake for real between two throwaway profiles (Alice and Bob) on a relay inside the
 *  app, then returns every step's real data, with the relay playing `attack` and how that ended. */
export function runDemo(attack: DemoAttack): Promise<DemoRun> {
  return call<DemoRun>('run_demo', { attack });
}

// --- measurement (scripts/perf-app.sh); no-ops unless the script started the app ---

/** The chat the performance script wants opened, or null. */
export function perfOpenChat(): Promise<string | null> {
  return call<string | null>('perf_open_chat');
}

/** Records a milestone (with a duration in ms, if any) in the performance script's report. */
export function perfMark(name: string, valueMs: number | null = null): Promise<void> {
  return call<void>('perf_mark', { name, valueMs });
}
