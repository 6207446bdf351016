// A backup or restore under way, as its dialog shows it: whether it runs, how far it is, why it failed; closing
// the dialog cancels it.
import { cancelBackup, type BackupProgress } from './ipc';
import { describeError } from './errors';

export class BackupTask {
  running = $state(false);
  progress = $state<BackupProgress | null>(null);
  /** Why it failed (or why it cannot start), as a sentence. */
  error = $state<string | null>(null);

  /** Runs `work`, which reports progress through its argument: its answer, or undefined once the failure shows. */
  async run<T>(work: (onProgress: (progress: BackupProgress) => void) => Promise<T>): Promise<T | undefined> {
    this.error = null;
    this.running = true;
    this.progress = null;
    try {
      return await work((progress) => (this.progress = progress));
    } catch (failure) {
      this.error = describeError(failure);
      return undefined;
    } finally {
      this.running = false;
    }
  }

  /** Stops the backup or restore under way, if any (nothing of it is left). */
  cancel(): void {
    if (this.running) void cancelBackup();
  }
}
