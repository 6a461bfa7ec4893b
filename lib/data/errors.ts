/** Data errors: the user's to fix (a missing or bad file, a bad split line, impossible episode sizes). */
import { UserError } from '../errors.js';

/**
 * A bad data input; the message names the file (and line or value).
 * Its `name` stays 'UserError' so the CLI prints the message alone and exits non-zero.
 */
export class OmniglotDataError extends UserError {
  constructor(message: string, readonly file?: string) {
    super(message);
  }
}
