// The only module that talks to the Rust backend. Everything else imports typed functions from here.
import { invoke } from '@tauri-apps/api/core';
import type { AppInfo, IpcErrorCode } from './bindings';

export type { AppInfo, CredentialStore, IpcError, IpcErrorCode } from './bindings';

/** A failed backend call: `code` is one of Rust's IpcErrorCode values, or 'unknown' for anything malformed. */
export class MagpieError extends Error {
  readonly code: IpcErrorCode | 'unknown';

  constructor(code: IpcErrorCode | 'unknown', message: string) {
    super(message);
    this.name = 'MagpieError';
    this.code = code;
  }
}

// A Record keyed by the generated union: adding a code in Rust fails the type check until it is listed here.
const KNOWN_CODES: Record<IpcErrorCode, true> = { data_directory: true, internal: true };

function isKnownCode(value: unknown): value is IpcErrorCode {
  return typeof value === 'string' && Object.hasOwn(KNOWN_CODES, value);
}

/** Turns whatever a rejected `invoke` produced into a MagpieError. */
export function toMagpieError(raw: unknown): MagpieError {
  if (raw instanceof MagpieError) return raw;
  if (typeof raw === 'object' && raw !== null) {
    const { code, message } = raw as Record<string, unknown>;
    if (isKnownCode(code) && typeof message === 'string') return new MagpieError(code, message);
  }
  const text = raw instanceof Error ? raw.message : String(raw);
  return new MagpieError('unknown', text);
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (raw) {
    throw toMagpieError(raw);
  }
}

/** Version, data folder and credential-store status of this installation. */
export function appInfo(): Promise<AppInfo> {
  return call<AppInfo>('app_info');
}
