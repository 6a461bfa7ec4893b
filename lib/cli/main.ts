#!/usr/bin/env node
/** The evometa command. Subcommands live one per file beside this one. */
import { Command } from 'commander';
import { registerTrain } from './train.js';
import { registerEval } from './eval.js';
import { registerDevices } from './devices.js';
import { registerExport } from './export.js';
import { registerReport } from './report.js';
import { registerL2l } from './l2l.js';
import { warnDeviceFallback } from './devices.js';
import { VERSION } from '../version.js';
import { registerEvograd } from './evograd.js';
import { registerWorker } from './worker.js';

const program = new Command();
program
  .name('evometa')
  .description('meta-learning with evolution strategies: ES-ProtoNet on Omniglot')
  .version(VERSION, '-V, --version', 'print the version of evometa')
  .option('--debug', 'print stack traces for errors')
  .showHelpAfterError();
// Commands that compute on the default device say once, on stderr, when it is a fallback (and why).
program.hook('preAction', (_program, cmd) => {
  const o = cmd.opts<{ device?: string; showConfig?: boolean }>();
  if (['train', 'eval', 'l2l'].includes(cmd.name()) && o.device === undefined && !o.showConfig) warnDeviceFallback();
});
registerTrain(program);
registerEval(program);
registerDevices(program);
registerExport(program);
registerReport(program);
registerL2l(program);
registerEvograd(program);
registerWorker(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const err = e as Error;
  if (program.opts<{ debug?: boolean }>().debug) console.error(err.stack ?? err);
  else console.error(`evometa: ${err.message}`);
  process.exitCode = ['UserError', 'OmniglotDataError', 'SafetensorsError', 'DeviceUnavailableError'].includes(err.name) ? 2 : 1;
}
