// Generated from src-tauri/src/ipc_types.rs by `npm run bindings`. Do not edit: a test fails when stale.

export type AppInfo = { name: string, version: string, 
/**
 * Where this installation keeps its profiles and history.
 */
data_dir: string, credential_store: CredentialStore, };

export type CredentialStore = { backend: string, available: boolean, problem: string | null, };

export type IpcError = { code: IpcErrorCode, message: string, };

export type IpcErrorCode = "data_directory" | "internal";
