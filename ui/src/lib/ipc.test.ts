import { afterEach, describe, expect, it } from 'vitest';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { appInfo, MagpieError, toMagpieError, type AppInfo } from './ipc';
import { describeError } from './errors';

const sample: AppInfo = {
  name: 'magpie-desktop',
  version: '0.1.0',
  data_dir: '/home/ana/.local/share/app.magpie.desktop',
  credential_store: { backend: 'Secret Service', available: true, problem: null },
};

afterEach(() => clearMocks());

describe('appInfo', () => {
  it('calls the app_info command and returns its answer', async () => {
    const calls: string[] = [];
    mockIPC((command) => {
      calls.push(command);
      return sample;
    });
    await expect(appInfo()).resolves.toEqual(sample);
    expect(calls).toEqual(['app_info']);
  });

  it('turns a {code, message} rejection into a MagpieError with that code', async () => {
    mockIPC(() => {
      throw { code: 'data_directory', message: 'Magpie could not find a folder for its data.' };
    });
    const error = await appInfo().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MagpieError);
    expect((error as MagpieError).code).toBe('data_directory');
    expect((error as MagpieError).message).toBe('Magpie could not find a folder for its data.');
  });
});

describe('toMagpieError', () => {
  it('marks codes Rust never sends as unknown', () => {
    expect(toMagpieError({ code: 'made_up', message: 'x' }).code).toBe('unknown');
    expect(toMagpieError('plain string').code).toBe('unknown');
    expect(toMagpieError(null).message).toBe('null');
  });
});

describe('describeError', () => {
  it('never shows raw JSON to a person', () => {
    const text = describeError(toMagpieError({ nonsense: true }));
    expect(text).not.toContain('{');
    expect(text).toMatch(/Restart the app/);
  });

  it('passes on the sentence Rust wrote for a data-folder problem', () => {
    const text = describeError(new MagpieError('data_directory', 'Set MAGPIE_DATA_DIR to choose one.'));
    expect(text).toBe('Set MAGPIE_DATA_DIR to choose one.');
  });
});
