// Small pure helpers for showing identities: fingerprints, dates, usernames.

/** Splits a hex fingerprint into blocks ("ab12 cd34 …") so people can compare it aloud. */
export function groupHex(hex: string, size = 4): string {
  const clean = hex.replace(/[^0-9a-fA-F]/g, '').toLowerCase();
  const blocks: string[] = [];
  for (let i = 0; i < clean.length; i += size) blocks.push(clean.slice(i, i + size));
  return blocks.join(' ');
}

/** A Unix-seconds timestamp (a number, or a bigint from an i64) as a calendar date in the user's locale. */
export function formatDate(unixSeconds: number | bigint): string {
  return new Date(Number(unixSeconds) * 1000).toLocaleDateString(undefined, {
    year: 'numeric',
    month: 'long',
    day: 'numeric',
  });
}

export const USERNAME_RULE = '3 to 32 characters: lower-case letters a–z, digits 0–9, dot, underscore or hyphen.';

const USERNAME = /^[a-z0-9._-]{3,32}$/;

/** Lower-cases and trims what was typed into a username field. */
export function normaliseUsername(raw: string): string {
  return raw.trim().toLowerCase();
}

/** Null when `name` (already normalised) is a valid username, else a sentence saying what is wrong. */
export function usernameProblem(name: string): string | null {
  if (name.length === 0) return 'Choose a username.';
  if (name.length < 3) return 'A username needs at least 3 characters.';
  if (name.length > 32) return 'A username can have at most 32 characters.';
  if (!USERNAME.test(name)) return 'Use only letters a–z, digits, dot, underscore or hyphen.';
  return null;
}

/** A file size as people read it: "820 bytes", "14 KB", "3.2 MB" (decimal units, as file managers show). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} ${bytes === 1 ? 'byte' : 'bytes'}`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}
