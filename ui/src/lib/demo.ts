// Small pure helpers for the handshake demo: which steps are shown, how, and what they mean.
// Every value the demo shows comes from the DemoRun that Rust returned; this module only decides how to show it.
import type { DemoAttack, DemoParty, DemoRun, DemoStep, DemoVerdict, WireAction, WireEnvelope } from './ipc';
import { groupHex } from './format';

export const STEP_COUNT = 7;

/** One step revealed per this many milliseconds while auto-playing. */
export const AUTOPLAY_MS = 1200;

/** The rail's names before a run exists; once it does, the run's own titles are shown. */
export const STEP_TITLES: readonly string[] = [
  'Request',
  'Accept',
  'Directory',
  'Wrap key',
  'Sign',
  'Verify & unwrap',
  'Encrypted chat',
];

/** What each step of the protocol does (docs: design/protocol.md), shown under the run's own summary. */
export const STEP_EXPLANATIONS: Readonly<Record<number, string>> = {
  1:
    'A chat request carries Alice’s certificate and a timestamp, signed with her RSA-3072 key (RSA-PSS, SHA-256). ' +
    'Bob checks the certificate chain up to the relay’s CA and the signature before the request is shown to him.',
  2:
    'Bob answers with a fresh, one-time X25519 public key (eB) and signs the hash of the conversation so far, ' +
    'so nobody can swap in another key.',
  3:
    'Alice fetches Bob’s certificate from the relay’s directory, verifies its chain to the relay’s CA, that it ' +
    'names bob and that it matches the key she pinned for him, then checks Bob’s accept signature with it.',
  4:
    'Alice draws a random 32-byte session secret K and wraps it with RSA-OAEP (SHA-256) for Bob’s public key: ' +
    'only Bob’s private key can open it. She also makes her own one-time X25519 key (eA).',
  5:
    'Alice signs the transcript hash, which now covers eB, eA and the wrapped K. If anyone changes a single bit ' +
    'on the way, Bob’s check of this signature fails.',
  6:
    'Bob verifies Alice’s signature, unwraps K with his private key and mixes it with X25519(eB, eA) through ' +
    'HKDF-SHA256 into the session keys. He proves he has them with a confirm MAC (HMAC-SHA256) and deletes eB’s ' +
    'private half.',
  7:
    'Alice checks Bob’s confirm MAC and deletes eA’s private half: both sides hold the same keys. Each message is ' +
    'sealed with AES-256-GCM under its own key, which ratchets forward; the relay only ever carries ciphertext.',
};

/** What the demo's relay can do, in the order offered, with what it does in a sentence. */
export const ATTACKS: readonly { value: DemoAttack; label: string; help: string }[] = [
  {
    value: 'none',
    label: 'Nothing: an honest relay',
    help: 'The relay stores and forwards every envelope as it was sent.',
  },
  {
    value: 'flip_wrapped_key',
    label: 'Flip a bit in the wrapped key',
    help: 'The relay flips one bit in the wrapped session key on its way to Bob.',
  },
  {
    value: 'substitute_known_contact',
    label: 'Substitute bob’s certificate (known contact)',
    help:
      'After a first chat, the relay’s directory answers Alice with a certificate its own CA issued for bob, ' +
      'for a key of the relay’s.',
  },
  {
    value: 'substitute_first_contact',
    label: 'Substitute both certificates (first contact)',
    help:
      'A full man in the middle: on a first contact the relay gives each of them a certificate of its own for ' +
      'the other’s name, and runs a handshake with each.',
  },
  {
    value: 'replay_old_request',
    label: 'Replay an old chat request',
    help: 'After the chat opens, the relay delivers to Bob a chat request Alice signed eight days ago.',
  },
  {
    value: 'forge_key_confirm',
    label: 'Forge Bob’s key confirmation',
    help: 'The relay flips one bit of the MAC in Bob’s key confirmation (step 6) on its way to Alice.',
  },
  {
    value: 'drop_key_confirm',
    label: 'Drop Bob’s key confirmation',
    help: 'The relay tells Bob it stored his key confirmation, then never delivers it.',
  },
  {
    value: 'replay_message',
    label: 'Replay Alice’s message',
    help: 'After the chat opens, the relay delivers Alice’s message to Bob again, under a new envelope id.',
  },
];

/** The choice for `attack`. */
export function attackOf(attack: DemoAttack): (typeof ATTACKS)[number] {
  return ATTACKS.find((choice) => choice.value === attack) ?? ATTACKS[0]!;
}

/** The verdict in a line: who caught the attack and where, or that the chat stalled, or that nothing caught it. */
export function verdictHeading(verdict: DemoVerdict): string {
  const at = verdict.step === null ? '' : ` at step ${verdict.step}`;
  switch (verdict.kind) {
    case 'caught':
      return `Caught: ${verdict.caught_by === 'alice' ? 'Alice' : 'Bob'} stopped it${at}`;
    case 'stalled':
      return `Stalled${at}: the chat never opened`;
    case 'missed':
      return 'Not caught by any automatic check';
  }
}

/** What the wire column says of an envelope the relay did not simply carry; null when it did. */
export function actionLabel(action: WireAction): string | null {
  switch (action) {
    case 'tampered':
      return 'tampered by the relay';
    case 'dropped':
      return 'dropped by the relay';
    case 'replayed':
      return 'replayed by the relay';
    case 'diverted':
      return 'to or from the relay’s impostor';
    case 'carried':
      return null;
  }
}

/** How the rail shows a step: its real status once revealed, `pending` before. */
export type ShownStatus = DemoStep['status'] | 'pending';

/** Whether nothing more can be revealed: all steps are shown, or a shown step did not pass. */
export function isFinished(run: DemoRun, revealed: number): boolean {
  return revealed >= run.steps.length || run.steps.slice(0, revealed).some((step) => step.status !== 'passed');
}

/** The status to show for step `number` (1-based) when `revealed` steps are shown. Once the story stopped at a
 *  failed step, the steps after it show as not reached. */
export function shownStatus(run: DemoRun | null, revealed: number, number: number): ShownStatus {
  const step = run?.steps[number - 1];
  if (!run || !step) return 'pending';
  if (number <= revealed) return step.status;
  return isFinished(run, revealed) ? 'not_reached' : 'pending';
}

/** The first step that failed, if any. */
export function failedStep(run: DemoRun): DemoStep | null {
  return run.steps.find((step) => step.status === 'failed') ?? null;
}

/** Why the handshake stopped, in the run's own words; null when it did not stop. */
export function failureReason(run: DemoRun): string | null {
  if (run.failure) return run.failure;
  const step = failedStep(run);
  if (!step) return null;
  return step.checks.at(-1) ?? (step.summary || null);
}

/** The rail's short form of a failure: the first sentence of its cause after the last colon ("Bob stopped it:
 * bad signature. Nothing was kept." → "Bad signature"); the whole text is in the failure panel. */
export function shortReason(reason: string): string {
  const colon = reason.lastIndexOf(': ');
  const cause = (colon < 0 ? reason : reason.slice(colon + 2)).trim();
  const sentence = (cause.split('. ')[0] ?? cause).replace(/\.$/, '');
  return sentence.charAt(0).toUpperCase() + sentence.slice(1);
}

/** Each check with whether it passed: in a failed step the last check is the one that failed. */
export function checkOutcomes(step: DemoStep): { text: string; passed: boolean }[] {
  const failedIndex = step.status === 'failed' ? step.checks.length - 1 : -1;
  return step.checks.map((text, index) => ({ text, passed: index !== failedIndex }));
}

/** Which way an envelope crosses the wire column: from Alice's side (left) or Bob's side (right). */
export function envelopeDirection(run: DemoRun, envelope: WireEnvelope, actor: DemoStep['actor']): 'ltr' | 'rtl' {
  if (envelope.from === run.alice.username) return 'ltr';
  if (envelope.from === run.bob.username) return 'rtl';
  return actor === 'alice' ? 'ltr' : 'rtl';
}

/** "chat_request" → "Chat request". */
export function kindLabel(kind: string): string {
  const text = kind.replace(/_/g, ' ').trim();
  return text ? text[0]!.toUpperCase() + text.slice(1) : 'Envelope';
}

/** "1 byte", "1,712 bytes". */
export function formatBytes(bytes: number): string {
  return bytes === 1 ? '1 byte' : `${bytes.toLocaleString('en-US')} bytes`;
}

/** "850 ms", "2.4 s". */
export function formatElapsed(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The first `blocks` groups of a hex fingerprint ("ab12 cd34 ef56 7890 …"), to recognise it at a glance. */
export function shortFingerprint(hex: string, blocks = 4): string {
  const groups = groupHex(hex).split(' ').filter(Boolean);
  return groups.length > blocks ? `${groups.slice(0, blocks).join(' ')} …` : groups.join(' ');
}

/** "alice" → "Alice". */
export function displayName(party: DemoParty): string {
  const name = party.username;
  return name ? name[0]!.toUpperCase() + name.slice(1) : name;
}

const STATUS_WORDS: Record<ShownStatus, string> = {
  passed: 'passed',
  failed: 'failed',
  not_reached: 'not reached',
  pending: 'not shown yet',
};

export function statusWord(status: ShownStatus): string {
  return STATUS_WORDS[status];
}

/** What the live region says when a step is revealed. */
export function announceStep(run: DemoRun, step: DemoStep): string {
  const head = `Step ${step.number} of ${run.steps.length}, ${step.title}: ${statusWord(step.status)}.`;
  if (step.status === 'failed') {
    const reason = failureReason(run);
    return reason ? `${head} ${reason}` : head;
  }
  const text = step.summary ? `${head} ${step.summary}` : head;
  if (step.number === run.steps.length && step.status === 'passed' && run.message) {
    return `${text} Bob’s window shows: ${run.message.plaintext_received}`;
  }
  return text;
}
