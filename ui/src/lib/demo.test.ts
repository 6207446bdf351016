import { describe, expect, it } from 'vitest';
import {
  announceStep,
  checkOutcomes,
  envelopeDirection,
  failureReason,
  formatBytes,
  formatElapsed,
  isFinished,
  kindLabel,
  shortFingerprint,
  shownStatus,
  shortReason,
  verdictHeading,
} from './demo';
import { DEMO_TEXT, TAMPER_REASON, demoRun } from '../test/demo-fixture';

describe('revealing steps', () => {
  it('shows steps as pending until revealed, then with their real status', () => {
    const run = demoRun();
    expect(shownStatus(null, 0, 1)).toBe('pending');
    expect([1, 2, 3].map((n) => shownStatus(run, 1, n))).toEqual(['passed', 'pending', 'pending']);
    expect(isFinished(run, 6)).toBe(false);
    expect(isFinished(run, 7)).toBe(true);
  });

  it('stops at the failed step and shows the rest as not reached', () => {
    const run = demoRun({ attack: 'flip_wrapped_key' });
    expect(isFinished(run, 5)).toBe(false);
    expect(isFinished(run, 6)).toBe(true);
    expect(shownStatus(run, 5, 6)).toBe('pending');
    expect(shownStatus(run, 6, 6)).toBe('failed');
    expect(shownStatus(run, 6, 7)).toBe('not_reached');
  });

  it('takes the reason from the run, or from the failed step', () => {
    expect(failureReason(demoRun())).toBeNull();
    expect(failureReason(demoRun({ attack: 'flip_wrapped_key' }))).toBe(TAMPER_REASON);
    expect(failureReason({ ...demoRun({ attack: 'flip_wrapped_key' }), failure: null })).toBe(TAMPER_REASON);
  });

  it('marks the last check of a failed step as the one that failed', () => {
    const run = demoRun({ attack: 'flip_wrapped_key' });
    expect(checkOutcomes(run.steps[5]!)).toEqual([{ text: TAMPER_REASON, passed: false }]);
    expect(checkOutcomes(run.steps[0]!).every((check) => check.passed)).toBe(true);
  });

  it('announces a step with its status and what happened', () => {
    const run = demoRun();
    expect(announceStep(run, run.steps[0]!)).toBe(
      'Step 1 of 7, Request: passed. Alice signs a chat request for bob and sends it through the relay.',
    );
    expect(announceStep(run, run.steps[6]!)).toContain(`Bob’s window shows: ${DEMO_TEXT}`);
    const tampered = demoRun({ attack: 'flip_wrapped_key' });
    expect(announceStep(tampered, tampered.steps[5]!)).toBe(
      `Step 6 of 7, Verify & unwrap: failed. ${TAMPER_REASON}`,
    );
  });
});

describe('showing values', () => {
  it('sends envelopes from the sender’s side', () => {
    const run = demoRun();
    expect(envelopeDirection(run, run.steps[0]!.envelope!, 'alice')).toBe('ltr');
    expect(envelopeDirection(run, run.steps[1]!.envelope!, 'bob')).toBe('rtl');
    const odd = { ...run.steps[0]!.envelope!, from: 'someone' };
    expect(envelopeDirection(run, odd, 'bob')).toBe('rtl');
  });

  it('names kinds, sizes, durations and fingerprints for people', () => {
    expect(kindLabel('key_transfer')).toBe('Key transfer');
    expect(kindLabel('')).toBe('Envelope');
    expect(formatBytes(1)).toBe('1 byte');
    expect(formatBytes(2214)).toBe('2,214 bytes');
    expect(formatElapsed(850)).toBe('850 ms');
    expect(formatElapsed(2391)).toBe('2.4 s');
    expect(shortFingerprint('ABCDEF0123456789abcdef')).toBe('abcd ef01 2345 6789 …');
    expect(shortFingerprint('abcd')).toBe('abcd');
  });
});

describe('shortReason', () => {
  it('keeps the cause after the last colon, capitalized', () => {
    expect(shortReason('Bob stopped the handshake: bad signature')).toBe('Bad signature');
    expect(shortReason('a: b: the wrapped key does not open')).toBe('The wrapped key does not open');
    expect(
      shortReason(
        'Bob stopped the handshake at step 6 (Verify & unwrap): bad signature. Nothing of it was kept and no chat was opened.',
      ),
    ).toBe('Bad signature');
  });

  it('keeps a reason without a colon whole', () => {
    expect(shortReason('relay unreachable.')).toBe('Relay unreachable');
  });
});

describe('verdicts', () => {
  it('say who caught an attack and where, that the chat stalled, or that nothing caught it', () => {
    const base = {
      relay_did: '',
      check: '',
      why: '',
      fields: [],
      outcome: '',
    };
    expect(verdictHeading({ ...base, kind: 'caught', caught_by: 'bob', step: 6 })).toBe(
      'Caught: Bob stopped it at step 6',
    );
    expect(verdictHeading({ ...base, kind: 'caught', caught_by: 'alice', step: null })).toBe(
      'Caught: Alice stopped it',
    );
    expect(verdictHeading({ ...base, kind: 'stalled', caught_by: null, step: 7 })).toBe(
      'Stalled at step 7: the chat never opened',
    );
    expect(verdictHeading({ ...base, kind: 'missed', caught_by: null, step: null })).toBe(
      'Not caught by any automatic check',
    );
  });
});
