import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const srcDir = import.meta.dirname;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|svelte)$/.test(name) && !name.endsWith('.test.ts') ? [path] : [];
  });
}

describe('architecture', () => {
  it('only lib/ipc.ts talks to the Tauri backend', () => {
    const offenders = sourceFiles(srcDir)
      .filter((path) => /@tauri-apps\/api/.test(readFileSync(path, 'utf8')))
      .map((path) => relative(srcDir, path));
    expect(offenders).toEqual(['lib/ipc.ts']);
  });
});
