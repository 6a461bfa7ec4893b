/**
 * Optional cross-check against Snell et al.'s loader convention with Python: PIL's
 * Image.rotate(rot) (counter-clockwise) on the 105x105 image, ink = 1 - pixel/255,
 * then area averaging as a numpy matrix product W @ ink @ W^T / (105/S)^2.
 * Skips (counted as a skip, reason printed) when python with Pillow and numpy is absent.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadEmbedded } from '../lib/data/embedded.js';
import { loadOmniglot } from '../lib/data/omniglot.js';
import { DRAWINGS, rawPixel } from '../lib/data/raw.js';
import { ROTATIONS } from '../lib/data/preprocess.js';
import { makePng, tempDir } from './data-fixtures.js';
import { needs, pythonModules, runPython } from './helpers/peers.js';

const withPil = needs(pythonModules(['PIL', 'numpy']), 'data-pil.test: the PIL cross-check');

const SCRIPT = `
import sys, json
import numpy as np
from PIL import Image
out = {}
for path in sys.argv[2:]:
    img = Image.open(path).convert('L')
    for rot in (0, 90, 180, 270):
        ink = 1.0 - np.asarray(img.rotate(rot), dtype=np.float64) / 255.0
        for s in (28, 32):
            f = 105.0 / s
            W = np.zeros((s, 105))
            for j in range(s):
                for i in range(105):
                    W[j, i] = max(0.0, min(i + 1, (j + 1) * f) - max(i, j * f))
            out[f'{path}|{rot}|{s}'] = (W @ ink @ W.T / (f * f)).ravel().tolist()
json.dump(out, open(sys.argv[1], 'w'))
`;

withPil('rotation and area averaging agree with PIL Image.rotate + numpy area averaging (28 and 32, all rotations)', () => {
  const t = tempDir('pil');
  try {
    const raw = loadEmbedded();
    const images = [3, 20000, 31000];
    const paths = images.map((img) => {
      const p = join(t.dir, `${img}.png`);
      writeFileSync(p, makePng(105, 105, (y, x) => rawPixel(raw, img, y, x) === 1));
      return p;
    });
    const outFile = join(t.dir, 'out.json');
    runPython(['-c', SCRIPT, outFile, ...paths]);
    const py = JSON.parse(readFileSync(outFile, 'utf8')) as Record<string, number[]>;
    for (const size of [28, 32]) {
      const d = loadOmniglot({ imageSize: size, cacheDir: false });
      images.forEach((img, k) => {
        for (const rot of ROTATIONS) {
          const got = d.image(Math.floor(img / DRAWINGS), img % DRAWINGS, rot);
          const exp = py[`${paths[k]}|${rot}|${size}`]!;
          assert.is(exp.length, size * size);
          let maxErr = 0;
          for (let p = 0; p < exp.length; p++) maxErr = Math.max(maxErr, Math.abs(got[p]! - exp[p]!));
          // numpy's matrix product sums in another order: equal to float32 rounding
          assert.ok(maxErr < 1e-7, `image ${img} rot ${rot} size ${size}: max |diff| ${maxErr}`);
        }
      });
    }
  } finally {
    t.cleanup();
  }
});

test.run();
