/** The package's version (from package.json), recorded in checkpoints and shown by `evometa --version`. */
import { readFileSync } from 'node:fs';

function read(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export const VERSION: string = read();
