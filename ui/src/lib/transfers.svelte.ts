// Where each file's transfer stands, for the file cards: fetched once per file, then kept up to date by events.
import { fileStatus, type FileStatus, type UiEvent } from './ipc';

export interface Progress {
  done: number;
  total: number;
}

/** Pictures without a preview kept open (each at most 2 MB, in base64). */
const KEPT_PICTURES = 16;

export class Transfers {
  status = $state<Record<string, FileStatus>>({});
  progress = $state<Record<string, Progress>>({});
  #asked = new Set<string>();
  /** Pictures shown without a preview, newest last: a row scrolled back into view shows it without opening it
   *  again. */
  #pictures = new Map<string, Promise<string>>();

  /** The status of file message `id`, asking the backend the first time. */
  of(id: string): FileStatus | undefined {
    if (!this.#asked.has(id)) {
      this.#asked.add(id);
      fileStatus(id)
        .then((status) => {
          // An event may have come first: it is newer.
          if (!(id in this.status)) this.status = { ...this.status, [id]: status };
        })
        .catch(() => this.#asked.delete(id));
    }
    return this.status[id];
  }

  /** Takes what the backend says about transfers; other events are ignored. */
  handle(event: UiEvent): void {
    if (event.type === 'file_progress') {
      this.progress = { ...this.progress, [event.id]: { done: event.done, total: event.total } };
    } else if (event.type === 'file_status_changed') {
      this.status = { ...this.status, [event.id]: event.status };
    }
  }

  /** The picture of `id` as a data URL, opened by `open` the first time; the last few are kept. */
  picture(id: string, open: () => Promise<string>): Promise<string> {
    let shown = this.#pictures.get(id);
    if (!shown) {
      shown = open();
      shown.catch(() => this.#pictures.delete(id));
      this.#pictures.set(id, shown);
      while (this.#pictures.size > KEPT_PICTURES) {
        const oldest = this.#pictures.keys().next().value;
        if (oldest === undefined) break;
        this.#pictures.delete(oldest);
      }
    }
    return shown;
  }

  /** Forgets everything (another profile was opened: a restored one has the same message ids). */
  clear(): void {
    this.#asked.clear();
    this.#pictures.clear();
    this.status = {};
    this.progress = {};
  }

  /** Forgets what is known of `id` (after a retry, say), so it is asked again. */
  forget(id: string): void {
    this.#asked.delete(id);
    const { [id]: _status, ...status } = this.status;
    const { [id]: _progress, ...progress } = this.progress;
    this.status = status;
    this.progress = progress;
  }
}

/** The one the window shares. */
export const transfers = new Transfers();

/** The picture the viewer shows, if open: drawn by the conversation, above the message list (whose rows are
 *  moved by transforms, which would carry a dialog drawn inside them). */
export const viewer = $state<{ current: { id: string; name: string } | null }>({ current: null });
