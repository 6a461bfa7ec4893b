import type { Command } from 'commander';
import { UserError } from './errors.js';

export function registerEval(program: Command): void {
  program.command('eval').description('evaluate a checkpoint on few-shot episodes (pending the data loader)').action(() => {
    throw new UserError('eval is not implemented yet');
  });
}
