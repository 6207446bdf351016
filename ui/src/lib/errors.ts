import { MagpieError } from './ipc';

/** A sentence for a person, with a next step; never raw JSON. */
export function describeError(error: unknown): string {
  if (!(error instanceof MagpieError)) {
    return 'Something unexpected went wrong inside Magpie. Restart the app; if it happens again, please report it.';
  }
  switch (error.code) {
    case 'data_directory':
      return error.message;
    case 'internal':
      return `Magpie hit an internal problem: ${error.message} Restart the app and try again.`;
    case 'unknown':
      return 'Magpie could not reach its own backend. Restart the app; if it happens again, please report it.';
  }
}
