import type { TrainCliOptions } from '../cli/train.js';
import { UserError } from '../cli/errors.js';

/** Placeholder until the backprop trainer lands (issue 3). */
export async function trainBackpropCli(_opts: TrainCliOptions): Promise<void> {
  throw new UserError('train --method backprop is not implemented yet');
}
