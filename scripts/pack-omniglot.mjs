#!/usr/bin/env node
// Build the embedded Omniglot copy (data/omniglot/) from Lake's zips.
// Usage (after `npx tsc -p .`): node scripts/pack-omniglot.mjs [SRC_DIR] [OUT_DIR]
//   SRC_DIR: a folder with images_background.zip, images_evaluation.zip, LICENSE.omniglot,
//            splits/LICENSE.prototypical-networks, splits/vinyals/*.txt (default: ../shared/data/omniglot)
//   OUT_DIR: default data/omniglot
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { packOmniglot } = await import(join(repo, 'dist', 'lib', 'data', 'embedded.js'));
const src = resolve(process.argv[2] ?? join(repo, '..', 'shared', 'data', 'omniglot'));
const out = resolve(process.argv[3] ?? join(repo, 'data', 'omniglot'));
const t0 = performance.now();
let last = '';
const res = packOmniglot(src, out, (done, total, phase) => {
  const line = `${phase} ${done}/${total}`;
  if (line !== last) process.stderr.write(`\r${line}   `);
  last = line;
});
process.stderr.write('\n');
console.log(JSON.stringify({ ...res, seconds: +((performance.now() - t0) / 1000).toFixed(1) }));
