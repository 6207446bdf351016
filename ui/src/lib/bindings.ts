// Generated from src-tauri/src/ipc_types/ by `npm run bindings`. Do not edit: a test fails when stale.

export type AppInfo = { name: string, version: string, 
/**
 * Where this installation keeps its profiles and history.
 */
data_dir: string, credential_store: CredentialStore, };

export type CredentialStore = { backend: string, available: boolean, problem: string | null, };

export type IpcError = { code: IpcErrorCode, message: string, 
/**
 * Seconds before another passphrase is taken (with `wrong_passphrase`).
 */
wait_secs?: bigint, };

export type IpcErrorCode = "data_directory" | "internal" | "credential_store" | "invalid_input" | "name_taken" | "unknown_user" | "relay_unreachable" | "relay_ca_changed" | "relay" | "no_profile" | "profile" | "no_session" | "key_changed" | "no_request" | "fingerprint_mismatch" | "backup" | "locked" | "wrong_passphrase" | "unlock_wait";

export type ProfileSummary = { 
/**
 * Stable id (names the credential-store entries).
 */
id: string, username: string, 
/**
 * The relay it registered with; `None` if registration never finished.
 */
relay_url: string | null, 
/**
 * Registered with the relay embedded in this app.
 */
local_relay: boolean, };

export type ProfilesView = { profiles: Array<ProfileSummary>, active: string | null, locked: LockedView | null, };

export type LockedView = { profile_id: string, username: string, 
/**
 * Open behind the lock (its connection keeps receiving), rather than waiting to be opened.
 */
open: boolean, };

export type LockStatus = { 
/**
 * A passphrase is set: the keys are wrapped with it.
 */
on: boolean, };

export type RelayChoice = { "kind": "local" } | { "kind": "remote", url: string, ca_fingerprint: string, };

export type RelayProbe = { url: string, 
/**
 * SHA-256 of the CA's public key, hex.
 */
ca_fingerprint: string, 
/**
 * The CA certificate's subject, as it names itself.
 */
ca_subject: string, };

export type OnboardingStage = "starting_relay" | "generating_key" | "storing_key" | "registering" | "done";

export type IdentityView = { profile_id: string, username: string, 
/**
 * SHA-256 of our public key, hex.
 */
fingerprint: string, certificate_subject: string, certificate_serial: string, 
/**
 * Unix seconds.
 */
valid_from: number, valid_until: number, relay_url: string, relay_ca_fingerprint: string, local_relay: boolean, 
/**
 * Where the private key is kept, in words ("Secret Service (GNOME Keyring, …)").
 */
key_store: string, };

export type Direction = "outgoing" | "incoming";

export type Delivery = "sending" | "sent" | "delivered" | "failed" | "received" | "waiting" | "uploading";

export type MessageItem = { id: string, peer: string, direction: Direction, body: string, 
/**
 * Sender's clock, Unix seconds.
 */
sent_at: number, delivery: Delivery, 
/**
 * Position in the chat (for paging and read marks); `null` until stored.
 */
cursor: number | null, 
/**
 * A file message's file (its `body` is then empty).
 */
file: FileItem | null, };

export type SearchChat = { peer: string, 
/**
 * How many of its messages match (older than the cursor asked for).
 */
total: number, 
/**
 * The newest of them, newest first.
 */
found: Array<SearchHit>, };

export type SearchHit = { message: MessageItem, snippet: Array<SnippetPiece>, };

export type SnippetPiece = { text: string, matched: boolean, };

export type SearchSummary = { 
/**
 * Messages that matched, in all chats searched.
 */
total: number, 
/**
 * A newer search took its place before it finished.
 */
cancelled: boolean, };

export type BackupProgress = { done: number, total: number, };

export type BackupDone = { 
/**
 * The file's name (not its folder).
 */
file_name: string, contacts: number, messages: number, bytes: number, };

export type PickedBackup = { file_name: string, bytes: number, };

export type ExportDone = { file_name: string, messages: number, files: number, };

export type FileItem = { 
/**
 * The name to save it under.
 */
name: string, 
/**
 * Bytes.
 */
size: number, 
/**
 * `type/subtype`, as the sender guessed it.
 */
media_type: string, 
/**
 * An image's preview, carried in the message.
 */
thumbnail: ThumbnailItem | null, };

export type ThumbnailItem = { url: string, width: number, height: number, };

export type TransferState = "uploading" | "uploaded" | "offered" | "downloading" | "ready" | "failed" | "unknown";

export type FileStatus = { state: TransferState, reason: string | null, };

export type MessagePage = { messages: Array<MessageItem>, 
/**
 * More messages exist before the first one here.
 */
has_more: boolean, 
/**
 * More messages exist after the last one here (a page around a search result, not the chat's end).
 */
has_newer: boolean, 
/**
 * Where the chat's re-keys fell, oldest first: each comes after every message with a smaller cursor and
 * before every message with a larger one (the "new session keys" dividers).
 */
rekeys: number[], };

export type ChatSummary = { peer: string, verified: boolean, 
/**
 * Their key changed: the chat is blocked until the user accepts it or verifies again.
 */
key_changed: boolean, 
/**
 * During a key change, the new key's fingerprint (hex): what "Accept new key" accepts.
 */
new_fingerprint: string | null, 
/**
 * Keys are agreed: messages can be sent.
 */
has_session: boolean, 
/**
 * No keys yet, but a handshake is under way: what is written waits for them.
 */
session_coming: boolean, 
/**
 * What was discarded from this peer because it did not verify, until the user dismisses the notice.
 */
discarded: DiscardedView | null, last_message: MessageItem | null, 
/**
 * Incoming messages after the read mark (counted up to 100).
 */
unread: number, 
/**
 * Unix seconds of the last message or handshake, for ordering.
 */
last_activity: number | null, };

export type DiscardedView = { messages: number, 
/**
 * Handshake steps (key exchange messages).
 */
steps: number, 
/**
 * Unix seconds of the first and the last.
 */
since: number, last: number, };

export type IncomingRequest = { 
/**
 * Which request: accept and decline name it.
 */
request_id: string, peer: string, 
/**
 * Their key's fingerprint (hex), verified to the relay's CA.
 */
fingerprint: string, 
/**
 * Unix seconds, their clock.
 */
sent_at: number, 
/**
 * Their key differs from the one pinned for this name.
 */
key_changed: boolean, };

export type RequestsView = { incoming: Array<IncomingRequest>, 
/**
 * Peers we asked who have not answered yet.
 */
outgoing: Array<string>, };

export type SafetyNumberView = { peer: string, 
/**
 * 12 groups of 5 digits.
 */
groups: Array<string>, 
/**
 * The QR code of the number, as an SVG document.
 */
qr_svg: string, 
/**
 * The peer's key in this number (hex): verifying sends it back, and is refused if the key changed meanwhile.
 */
fingerprint: string, verified: boolean, 
/**
 * Shown during a key change: this is the new key's number.
 */
key_changed: boolean, };

export type ConnectionState = "connecting" | "online" | "offline";

export type UiEvent = { "type": "connection", state: ConnectionState, } | { "type": "locked" } | { "type": "open_chat", peer: string, } | { "type": "notice", message: string, } | { "type": "request_received", peer: string, fingerprint: string, key_changed: boolean, } | { "type": "request_declined", peer: string, } | { "type": "handshake_progress", peer: string, step: string, } | { "type": "handshake_failed", peer: string, reason: string, } | { "type": "session_established", peer: string, rekey: boolean, } | { "type": "message", message: MessageItem, } | { "type": "delivery_changed", peer: string, id: string, delivery: Delivery, } | { "type": "send_refused", peer: string, id: string, reason: SendRefusal, } | { "type": "key_changed", peer: string, } | { "type": "rejected", peer: string, step: boolean, reason: string, } | { "type": "file_progress", peer: string, id: string, done: number, total: number, } | { "type": "file_status_changed", peer: string, id: string, status: FileStatus, } | { "type": "files_dropped", names: Array<string>, };

export type SendRefusal = "mailbox_full" | "refused";

export type Theme = "system" | "light" | "dark";

export type Settings = { theme: Theme, 
/**
 * Native notifications for messages that arrive while the window is not focused.
 */
notifications: boolean, 
/**
 * With a lock passphrase set, lock after this many minutes without input (0: never).
 */
lock_after_minutes: number, 
/**
 * Closing the window leaves Magpie running in the tray. Where a settings file predates it: on where the
 * desktop shows tray icons.
 */
keep_running_in_tray: boolean, };

export type DemoAttack = "none" | "flip_wrapped_key" | "substitute_known_contact" | "substitute_first_contact" | "replay_old_request" | "forge_key_confirm" | "drop_key_confirm" | "replay_message";

export type WireAction = "carried" | "tampered" | "dropped" | "replayed" | "diverted";

export type VerdictKind = "caught" | "stalled" | "missed";

export type DemoVerdict = { kind: VerdictKind, 
/**
 * What the relay did, one sentence.
 */
relay_did: string, 
/**
 * Who stopped it, when it was caught.
 */
caught_by: DemoActor | null, 
/**
 * The step it was stopped at (1–7), when it was stopped inside the handshake.
 */
step: number | null, 
/**
 * The check, named.
 */
check: string, 
/**
 * Why the check holds.
 */
why: string, 
/**
 * The real values the check compared.
 */
fields: Array<DemoField>, 
/**
 * What the user is left with.
 */
outcome: string, };

export type DemoParty = { username: string, 
/**
 * "CN=alice".
 */
certificate_subject: string, 
/**
 * The relay CA that issued it.
 */
certificate_issuer: string, certificate_serial: string, 
/**
 * SHA-256 of the public key, hex.
 */
fingerprint: string, };

export type DemoStatus = "passed" | "failed" | "not_reached";

export type DemoActor = "alice" | "bob";

export type DemoField = { label: string, value: string, 
/**
 * The whole value when `value` is shortened.
 */
full: string | null, };

export type WireEnvelope = { from: string, to: string, 
/**
 * chat_request, chat_accept, key_transfer, key_confirm, message, ...
 */
kind: string, 
/**
 * Bytes of body the relay carried.
 */
bytes: number, 
/**
 * The first bytes of what it hides (a message's ciphertext, the wrapped key), else of its body, hex.
 */
preview_hex: string, 
/**
 * What the relay did with it.
 */
action: WireAction, 
/**
 * Whose relay carried it, when a man in the middle shows each side a relay of its own; `None` when one relay
 * carried it for both.
 */
face: DemoActor | null, };

export type DemoStep = { 
/**
 * 1 to 7.
 */
number: number, 
/**
 * "Request", "Accept", "Directory", "Wrap key", "Sign", "Verify & unwrap", "Encrypted chat".
 */
title: string, actor: DemoActor, status: DemoStatus, 
/**
 * One sentence: what happened.
 */
summary: string, 
/**
 * Checks that passed ("Signature verified with alice's certificate") or the one that failed.
 */
checks: Array<string>, fields: Array<DemoField>, 
/**
 * The envelope this step put on the wire, if any.
 */
envelope: WireEnvelope | null, };

export type DemoMessage = { plaintext_sent: string, 
/**
 * What Bob's window shows after decrypting.
 */
plaintext_received: string, ciphertext_bytes: number, 
/**
 * As the relay stored it, hex (truncated).
 */
ciphertext_preview_hex: string, };

export type DemoRun = { attack: DemoAttack, relay_url: string, relay_ca_fingerprint: string, alice: DemoParty, bob: DemoParty, 
/**
 * Always seven, in order.
 */
steps: Array<DemoStep>, message: DemoMessage | null, 
/**
 * Everything the relay saw, in order.
 */
wire: Array<WireEnvelope>, 
/**
 * Why the handshake stopped, when it did.
 */
failure: string | null, 
/**
 * How the attack ended, when there was one.
 */
verdict: DemoVerdict | null, 
/**
 * How long the real run took, milliseconds (key generation included).
 */
elapsed_ms: number, };
