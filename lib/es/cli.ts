import type { TrainCliOptions } from '../cli/train.js';
import { UserError } from '../cli/errors.js';

/** Placeholder until the ES trainer lands (issue 4). */
export async function trainEsCli(_opts: TrainCliOptions): Promise<void> {
  throw new UserError('train --method es is not implemented yet');
}
