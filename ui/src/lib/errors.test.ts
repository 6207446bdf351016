import { describe, expect, it } from 'vitest';
import { describeError } from './errors';
import { MagpieError } from './ipc';

const CODES = [
  'data_directory',
  'internal',
  'credential_store',
  'invalid_input',
  'name_taken',
  'unknown_user',
  'relay_unreachable',
  'relay_ca_changed',
  'relay',
  'no_profile',
  'profile',
  'no_session',
  'key_changed',
  'no_request',
  'fingerprint_mismatch',
  'backup',
  'unknown',
] as const;

describe('describeError', () => {
  it.each(CODES)('turns %s into a sentence without JSON', (code) => {
    const text = describeError(new MagpieError(code, 'detail from rust'));
    expect(text).toMatch(/^[A-Z].*[.!?]$/s);
    expect(text).not.toMatch(/[{}]/);
  });

  it('says a taken name plainly', () => {
    expect(describeError(new MagpieError('name_taken', 'NameTaken("alice")'))).toBe(
      'That name is taken on this relay; choose another.',
    );
  });

  it('names the relay that could not be reached and what happens to messages', () => {
    const text = describeError(new MagpieError('relay_unreachable', 'x'), { relayUrl: 'https://r.example' });
    expect(text).toContain('The relay at https://r.example is not reachable.');
    expect(text).toContain('sent when it is back');
  });

  it('warns about a changed relay CA like a changed host key', () => {
    expect(describeError(new MagpieError('relay_ca_changed', 'x'))).toMatch(/someone is intercepting/);
  });

  it('makes a sentence of Rust’s lower-case message', () => {
    expect(describeError(new MagpieError('invalid_input', 'username too short'))).toContain('Username too short.');
  });

  it('does not leak non-Magpie errors', () => {
    expect(describeError(new Error('stack trace at foo.js:1'))).not.toContain('foo.js');
  });
});
