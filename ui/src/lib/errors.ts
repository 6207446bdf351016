import { MagpieError } from './ipc';

/** What the screen knows that makes an error sentence more useful. */
export interface ErrorContext {
  /** The relay the failed call was talking to. */
  relayUrl?: string;
}

/** Rust's message as a sentence: trimmed, capitalised, ending in a full stop. */
function sentence(message: string): string {
  const text = message.trim();
  if (!text) return '';
  const capitalised = text[0]!.toUpperCase() + text.slice(1);
  return /[.!?…]$/.test(capitalised) ? capitalised : `${capitalised}.`;
}

/** A sentence for a person, with a next step; never raw JSON. */
export function describeError(error: unknown, context: ErrorContext = {}): string {
  if (!(error instanceof MagpieError)) {
    return 'Something unexpected went wrong inside Magpie. Restart the app; if it happens again, please report it.';
  }
  const relay = context.relayUrl ? `The relay at ${context.relayUrl}` : 'The relay';
  switch (error.code) {
    case 'data_directory':
      // Rust's sentence already says what to do (e.g. set MAGPIE_DATA_DIR).
      return sentence(error.message) || 'Magpie could not find a folder for its data. Set MAGPIE_DATA_DIR to choose one.';
    case 'internal':
      return `Magpie hit an internal problem: ${sentence(error.message)} Restart the app and try again.`;
    case 'credential_store':
      return (
        `Magpie could not use this computer's credential store, where private keys are kept: ` +
        `${sentence(error.message)} Unlock or start your keyring, then try again.`
      );
    case 'invalid_input':
      return `Magpie could not accept that: ${sentence(error.message)} Check what you entered and try again.`;
    case 'backup':
      // Rust's sentence says what went wrong and that nothing was left half-done.
      return sentence(error.message);
    case 'locked':
      return 'Magpie is locked. Enter the passphrase to go on.';
    case 'unlock_wait':
      return `Too many wrong passphrases: try again in ${error.waitSecs ?? 'a few'} s.`;
    case 'wrong_passphrase':
      return error.waitSecs
        ? `That passphrase is not the right one. Try again in ${error.waitSecs} s.`
        : 'That passphrase is not the right one.';
    case 'name_taken':
      return 'That name is taken on this relay; choose another.';
    case 'unknown_user':
      return 'Nobody with that name is registered on this relay. Check the spelling with them and try again.';
    case 'relay_unreachable':
      return (
        `${relay} is not reachable. Check your network connection and the address, then try again. ` +
        'Messages already written are kept and sent when it is back.'
      );
    case 'relay_ca_changed':
      return (
        `${relay} presented a different certificate authority than the one confirmed before. This can mean ` +
        'the relay was reinstalled — or that someone is intercepting. Ask the relay’s operator before you continue.'
      );
    case 'relay':
      return `${relay} refused the request: ${sentence(error.message)} Try again in a moment.`;
    case 'no_profile':
      return 'No profile is open. Create a profile or choose one first.';
    case 'profile':
      return (
        `Magpie could not use this profile’s data: ${sentence(error.message)} ` +
        'Close any other Magpie window that uses it and try again.'
      );
    case 'no_session':
      return 'There are no encryption keys with this person yet. Messages can be sent once they accept your chat request.';
    case 'key_changed':
      return 'This person’s security key changed. Compare safety numbers or accept the new key before you send.';
    case 'fingerprint_mismatch':
      return (
        'This person’s key changed while the number was on screen, so nothing was changed. ' +
        'Open the safety number again and compare the new one.'
      );
    case 'no_request':
      return 'That chat request is no longer waiting; it may have been answered or withdrawn already.';
    case 'unknown':
      return 'Magpie could not reach its own backend. Restart the app; if it happens again, please report it.';
  }
}
