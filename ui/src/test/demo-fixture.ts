// A DemoRun shaped like the one the Rust side builds (src-tauri/src/demo/steps.rs): seven steps, real-looking hex,
// the wire as the relay handled it. With `flip_wrapped_key` the relay flipped a bit of the key transfer and Bob's
// check at step 6 failed; with `replay_message` the chat opened and Bob dropped the relay's copy of the message.
import type { DemoAttack, DemoParty, DemoRun, DemoStep, DemoVerdict, WireAction, WireEnvelope } from '../lib/ipc';

const hex = (seed: string, bytes: number) => seed.repeat(Math.ceil((bytes * 2) / seed.length)).slice(0, bytes * 2);

function hexField(label: string, value: string) {
  return value.length > 32
    ? { label, value: `${value.slice(0, 32)}… (${value.length / 2} bytes)`, full: value }
    : { label, value, full: null };
}

function party(username: string, fingerprint: string): DemoParty {
  return {
    username,
    certificate_subject: `CN=${username}`,
    certificate_issuer: 'CN=Magpie demo relay CA',
    certificate_serial: '5a1f0c9e2b7d4e31a8c6f0d2b4e6a8c1',
    fingerprint,
  };
}

function envelope(from: string, to: string, kind: string, bytes: number, preview: string) {
  const action: WireAction = 'carried';
  return { from, to, kind, bytes, preview_hex: preview, action, face: null } satisfies WireEnvelope;
}

export const DEMO_TEXT = 'Hello Bob, this is Alice. Only you can read this.';
export const CIPHERTEXT_PREVIEW = '9f3c21d0a7b84e55c1f20a9de376b1c04f8a2e61d93b7c05';
export const TAMPER_REASON =
  'Bob rejected the key transfer: its signature does not match what alice signed (the message was changed on the way).';

export const REPLAY_CHECK = 'Bob’s ratchet, and the envelope id';

const VERDICTS: Partial<Record<DemoAttack, DemoVerdict>> = {
  flip_wrapped_key: {
    kind: 'caught',
    relay_did: 'The relay flipped one bit of the wrapped session secret K in Alice’s key transfer.',
    caught_by: 'bob',
    step: 6,
    check: 'Alice’s signature over the transcript',
    why: 'Alice signed the hash of the whole handshake, the wrapped K included.',
    fields: [
      { label: 'Wrapped K as Alice sent it', value: 'a7f3a7f3…', full: 'a7f3a7f3' },
      { label: 'Wrapped K as the relay delivered it', value: 'a6f3a7f3…', full: 'a6f3a7f3' },
    ],
    outcome: 'Bob refused the key transfer and kept nothing of it.',
  },
  replay_message: {
    kind: 'caught',
    relay_did: 'Once the chat was open, the relay delivered Alice’s message to Bob again.',
    caught_by: 'bob',
    step: null,
    check: REPLAY_CHECK,
    why: 'Each message key opens one message and is deleted once used.',
    fields: [
      { label: 'Envelope it first came in', value: '0b8e…', full: null },
      { label: 'Envelope of the copy', value: '77c1…', full: null },
      { label: 'Times it shows in Bob’s chat', value: '1', full: null },
    ],
    outcome: 'Bob’s chat shows the message once.',
  },
};

export function demoRun({ attack = 'none' }: { attack?: DemoAttack } = {}): DemoRun {
  const tampered = attack === 'flip_wrapped_key';
  const alice = party('alice', hex('a1c3e5', 32));
  const bob = party('bob', hex('b0d2f4', 32));
  const request = envelope('alice', 'bob', 'chat_request', 2214, '7b2276223a312c22726571756573745f6964223a2236');
  const accept = envelope('bob', 'alice', 'chat_accept', 873, '7b2276223a312c22726571756573745f6964223a2236');
  const transfer = envelope('alice', 'bob', 'key_transfer', 1131, '7b2276223a312c2277726170706564');
  const tamperedTransfer = { ...transfer, preview_hex: '7b2276223a312c2277726170706565', action: 'tampered' as const };
  const confirm = envelope('bob', 'alice', 'key_confirm', 214, '7b2276223a312c22636f6e6669726d');
  const message = envelope('alice', 'bob', 'message', 181, CIPHERTEXT_PREVIEW);

  const steps: DemoStep[] = [
    {
      number: 1,
      title: 'Request',
      actor: 'alice',
      status: 'passed',
      summary: 'Alice signs a chat request for bob and sends it through the relay.',
      checks: [
        "Bob verified alice's certificate chain to the relay's CA",
        "Bob verified the request's RSA-PSS signature with alice's certificate",
      ],
      fields: [
        { label: 'Request id', value: '6f1d3c2a-8b4e-4f60-9a7c-1e2d3f4a5b6c', full: null },
        { label: "Alice's key fingerprint (SHA-256)", value: alice.fingerprint, full: null },
        hexField('Request signature (RSA-PSS)', hex('3f9a0c7e', 384)),
      ],
      envelope: request,
    },
    {
      number: 2,
      title: 'Accept',
      actor: 'bob',
      status: 'passed',
      summary: 'Bob accepts: he makes an ephemeral X25519 key (eB) and signs his answer.',
      checks: ['Bob signed the accept with his private key (RSA-PSS)'],
      fields: [
        hexField("Bob's ephemeral X25519 public key (eB)", hex('e8b1', 32)),
        hexField('Accept signature (RSA-PSS)', hex('5c2d', 384)),
      ],
      envelope: accept,
    },
    {
      number: 3,
      title: 'Directory',
      actor: 'alice',
      status: 'passed',
      summary: "Alice fetches bob's certificate from the relay's directory and checks it.",
      checks: [
        "Chain verified to the relay's CA",
        'The certificate names bob',
        'Key pinned for bob (first contact)',
        "Bob's accept signature verified with his certificate",
      ],
      fields: [{ label: "Bob's key fingerprint (SHA-256)", value: bob.fingerprint, full: null }],
      envelope: null,
    },
    {
      number: 4,
      title: 'Wrap key',
      actor: 'alice',
      status: 'passed',
      summary: "Alice makes a fresh 32-byte session secret K and wraps it with bob's public RSA key.",
      checks: ["K wrapped with RSA-OAEP-SHA256 for bob's key: only bob's private key opens it"],
      fields: [
        hexField('Wrapped K (RSA-OAEP, 384 bytes)', hex('a7f3', 384)),
        hexField("Alice's ephemeral X25519 public key (eA)", hex('e4a2', 32)),
      ],
      envelope: tampered ? tamperedTransfer : transfer,
    },
    {
      number: 5,
      title: 'Sign',
      actor: 'alice',
      status: 'passed',
      summary: 'Alice signs the hash of the whole transcript, so nothing in it can be changed unseen.',
      checks: ["Transcript signed with alice's private key (RSA-PSS-SHA256)"],
      fields: [
        hexField('Transcript hash (SHA-256)', hex('d41c', 32)),
        hexField('Key transfer signature (RSA-PSS)', hex('8e0b', 384)),
      ],
      envelope: null,
    },
    tampered
      ? {
          number: 6,
          title: 'Verify & unwrap',
          actor: 'bob',
          status: 'failed',
          summary: `Failed: ${TAMPER_REASON}`,
          checks: [TAMPER_REASON],
          fields: [],
          envelope: null,
        }
      : {
          number: 6,
          title: 'Verify & unwrap',
          actor: 'bob',
          status: 'passed',
          summary: "Bob checks alice's signature, unwraps K and derives the session keys.",
          checks: [
            "Signature verified with alice's certificate",
            "K unwrapped with bob's private key",
            'Session keys derived from K and the X25519 secret (HKDF)',
          ],
          fields: [hexField('Session id', hex('1a2b', 16)), hexField('Confirm MAC (HMAC-SHA256)', hex('c0f1', 32))],
          envelope: confirm,
        },
    tampered
      ? {
          number: 7,
          title: 'Encrypted chat',
          actor: 'alice',
          status: 'not_reached',
          summary: 'Not reached: an earlier step failed.',
          checks: [],
          fields: [],
          envelope: null,
        }
      : {
          number: 7,
          title: 'Encrypted chat',
          actor: 'alice',
          status: 'passed',
          summary: "Alice checks bob's confirm MAC; both hold the same keys and the chat is open.",
          checks: [
            "Bob's confirm MAC verified: both sides derived the same keys",
            'Message sealed with AES-256-GCM under a key that ratchets forward per message',
            'Bob decrypted it; the relay saw only ciphertext',
          ],
          fields: [
            hexField('Confirm MAC', hex('c0f1', 32)),
            { label: 'Ciphertext on the relay', value: '181 bytes', full: null },
          ],
          envelope: message,
        },
  ];

  const replayed = { ...message, action: 'replayed' as const };
  return {
    attack,
    relay_url: 'http://127.0.0.1:41877',
    relay_ca_fingerprint: hex('ca7e', 32),
    alice,
    bob,
    steps,
    message: tampered
      ? null
      : {
          plaintext_sent: DEMO_TEXT,
          plaintext_received: DEMO_TEXT,
          ciphertext_bytes: 181,
          ciphertext_preview_hex: CIPHERTEXT_PREVIEW,
        },
    wire: tampered
      ? [request, accept, tamperedTransfer]
      : [request, accept, transfer, confirm, message, ...(attack === 'replay_message' ? [replayed] : [])],
    failure: tampered ? TAMPER_REASON : null,
    verdict: VERDICTS[attack] ?? null,
    elapsed_ms: tampered ? 1874 : 2391,
  };
}
