#!/usr/bin/env node
/** The evometa command. Subcommands live one per file beside this one. */
import { Command } from 'commander';
import { registerTrain } from './train.js';
import { registerEval } from './eval.js';
import { registerDevices } from './devices.js';
import { registerExport } from './export.js';
import { registerReport } from './report.js';
import { registerWorker } from './worker.js';

const program = new Command();
program
  .name('evometa')
  .description('meta-learning with evolution strategies: ES-ProtoNet on Omniglot')
  .option('--debug', 'print stack traces for errors')
  .showHelpAfterError();
registerTrain(program);
registerEval(program);
registerDevices(program);
registerExport(program);
registerReport(program);
registerWorker(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const err = e as Error;
  if (program.opts<{ debug?: boolean }>().debug) console.error(err.stack ?? err);
  else console.error(`evometa: ${err.message}`);
  process.exitCode = ['UserError', 'OmniglotDataError', 'SafetensorsError', 'DeviceUnavailableError'].includes(err.name) ? 2 : 1;
}
