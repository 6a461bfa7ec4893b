/** Shared by the data tests: locating ../shared, synthetic Lake-style zips, an independent float64 preprocessing. */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';
import pngjs from 'pngjs';

/** Repository root (this file runs as dist/test/data-fixtures.js). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** ../shared/data/omniglot beside the repository, or null with the reason. */
export function sharedOmniglot(): { dir: string | null; reason: string } {
  const dir = join(REPO, '..', 'shared', 'data', 'omniglot');
  const ok = existsSync(join(dir, 'images_background.zip')) && existsSync(join(dir, 'images_evaluation.zip'));
  return ok ? { dir, reason: '' } : { dir: null, reason: `${dir} not found (no ../shared beside this clone)` };
}

export function tempDir(tag: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `evometa-${tag}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A PNG (8-bit RGBA) of width x height: black where ink(y, x), white elsewhere. */
export function makePng(width: number, height: number, ink: (y: number, x: number) => boolean): Uint8Array {
  const png = new pngjs.PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const q = (y * width + x) * 4;
      const v = ink(y, x) ? 0 : 255;
      png.data[q] = v; png.data[q + 1] = v; png.data[q + 2] = v; png.data[q + 3] = 255;
    }
  }
  return new Uint8Array(pngjs.PNG.sync.write(png));
}

/** A deterministic synthetic drawing: a few filled rectangles that depend on (char, drawing). */
export function synthInk(char: number, drawing: number): (y: number, x: number) => boolean {
  const y0 = 5 + ((char * 7 + drawing * 3) % 60), x0 = 3 + ((char * 11 + drawing * 5) % 70);
  return (y, x) => (y >= y0 && y < y0 + 17 && x >= x0 && x < x0 + 4) || (y === 100 - char && x >= 90) || (x === 1 && y < 10 + drawing);
}

export interface SynthChar { set: 'background' | 'evaluation'; alphabet: string; character: string }

/**
 * Write images_background.zip and images_evaluation.zip into `dir`:
 * each character gets 20 PNGs XXXX_YY.png from synthInk (unless `files` overrides entries).
 */
export function writeLakeZips(dir: string, chars: SynthChar[], edit?: (files: Record<string, Record<string, Uint8Array>>) => void): void {
  const files: Record<string, Record<string, Uint8Array>> = { background: {}, evaluation: {} };
  chars.forEach((c, ci) => {
    for (let d = 0; d < 20; d++) {
      const name = `images_${c.set}/${c.alphabet}/${c.character}/${String(ci + 1).padStart(4, '0')}_${String(d + 1).padStart(2, '0')}.png`;
      files[c.set]![name] = makePng(105, 105, synthInk(ci, d));
    }
  });
  edit?.(files);
  for (const set of ['background', 'evaluation'] as const) {
    writeFileSync(join(dir, `images_${set}.zip`), zipSync(files[set]!, { level: 0 }));
  }
}

/** Rotate a square 0/1 image counter-clockwise by one quarter turn (out[y][x] = in[x][n-1-y], as numpy.rot90). */
function rot90(a: Float64Array, n: number): Float64Array {
  const o = new Float64Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) o[y * n + x] = a[x * n + (n - 1 - y)]!;
  return o;
}

/**
 * The reference preprocessing, written independently of lib/data/preprocess.ts:
 * rotate the 105x105 image first (quarter turns, counter-clockwise), then area-average
 * in float64 with real-valued interval overlaps (105/S is exact in binary for S = 28, 32).
 */
export function referenceImage(pixel: (y: number, x: number) => number, rotation: number, size: number): Float64Array {
  const n = 105;
  let img: Float64Array = new Float64Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) img[y * n + x] = pixel(y, x);
  for (let k = 0; k < rotation / 90; k++) img = rot90(img, n);
  const f = n / size;
  const out = new Float64Array(size * size);
  const overlap = (i: number, j: number): number => Math.max(0, Math.min(i + 1, (j + 1) * f) - Math.max(i, j * f));
  for (let j = 0; j < size; j++) {
    for (let l = 0; l < size; l++) {
      let s = 0;
      for (let i = Math.floor(j * f); i < Math.min(n, Math.ceil((j + 1) * f)); i++) {
        const wy = overlap(i, j);
        for (let k = Math.floor(l * f); k < Math.min(n, Math.ceil((l + 1) * f)); k++) s += wy * overlap(k, l) * img[i * n + k]!;
      }
      out[j * size + l] = s / (f * f);
    }
  }
  return out;
}
