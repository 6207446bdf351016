import { describe, expect, it } from 'vitest';
import { formatBytes, formatDate, groupHex, normaliseUsername, usernameProblem } from './format';

describe('groupHex', () => {
  it('groups a fingerprint in blocks of four, lower-case', () => {
    expect(groupHex('ABCDEF0123456789ab')).toBe('abcd ef01 2345 6789 ab');
    expect(groupHex('ab:cd:ef:01')).toBe('abcd ef01');
  });
});

describe('usernames', () => {
  it('accepts the allowed alphabet and lengths', () => {
    expect(usernameProblem('a.b_c-9')).toBeNull();
    expect(usernameProblem('x'.repeat(32))).toBeNull();
  });

  it('explains what is wrong', () => {
    expect(usernameProblem('')).toMatch(/Choose/);
    expect(usernameProblem('ab')).toMatch(/at least 3/);
    expect(usernameProblem('x'.repeat(33))).toMatch(/at most 32/);
    expect(usernameProblem('al ice')).toMatch(/only letters/);
    expect(usernameProblem('élan')).toMatch(/only letters/);
  });

  it('lower-cases and trims', () => {
    expect(normaliseUsername('  Alice ')).toBe('alice');
  });
});

describe('formatDate', () => {
  it('reads Unix seconds as number or bigint', () => {
    expect(formatDate(0n)).toBe(formatDate(0));
    expect(formatDate(1_767_225_600)).toMatch(/2026/);
  });
});

describe('formatBytes', () => {
  it('says bytes, then decimal units with one decimal below ten', () => {
    expect(formatBytes(1)).toBe('1 byte');
    expect(formatBytes(820)).toBe('820 bytes');
    expect(formatBytes(14_200)).toBe('14 KB');
    expect(formatBytes(3_240_000)).toBe('3.2 MB');
    expect(formatBytes(209_715_200)).toBe('210 MB');
    expect(formatBytes(5e12)).toBe('5.0 TB');
  });
});
