import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { platformOf } from './platform';

describe('platformOf', () => {
  it('names the desktop of each web view Magpie runs in', () => {
    expect(platformOf('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/605.1.15 (KHTML, like Gecko)')).toBe('linux');
    expect(
      platformOf('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)'),
    ).toBe('macos');
    expect(
      platformOf(
        'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0',
      ),
    ).toBe('windows');
    expect(platformOf('Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36')).toBe('other');
  });
});

describe('font stacks on Linux', () => {
  // WebKitGTK asks fontconfig for each family it lacks, once per size and weight: a stack of six absent
  // families cost 185 ms of the first layout.
  it('name only generic families', () => {
    const css = readFileSync(join(import.meta.dirname, '..', 'app.css'), 'utf8');
    const linux = /:root\[data-platform='linux'\]\s*\{([^}]*)\}/.exec(css)?.[1] ?? '';
    const stacks = [...linux.matchAll(/--(?:font|mono):\s*([^;]+);/g)].map((m) => m[1]!.trim());
    expect(stacks).toEqual(['sans-serif', 'monospace']);
  });
});
