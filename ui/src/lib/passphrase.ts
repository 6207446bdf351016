// What a backup's passphrase must be (the backend checks the length too).

/** Characters at least (as magpie-core's MIN_PASSPHRASE_CHARS). */
export const MIN_PASSPHRASE = 8;

/** Why `passphrase` (typed twice when `again` is given) cannot be used, or null. */
export function passphraseProblem(passphrase: string, again?: string): string | null {
  if ([...passphrase].length < MIN_PASSPHRASE) return `A passphrase needs at least ${MIN_PASSPHRASE} characters.`;
  if (again !== undefined && again !== passphrase) return 'The two passphrases differ.';
  return null;
}
