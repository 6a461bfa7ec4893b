/** `evometa devices`: every registered device, whether it initializes, and why not. */
import type { Command } from 'commander';
import { deviceReport } from '../device/registry.js';
import '../index.js';

export function registerDevices(program: Command): void {
  program
    .command('devices')
    .description('list devices, the one chosen by default, and why others are unavailable')
    .action(() => {
      console.log(JSON.stringify(deviceReport(), null, 2));
    });
}
