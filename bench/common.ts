/** Shared helpers of the benchmark scripts. */

/** The value after --name on the command line, or `def`. */
export function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}

/**
 * Convolution FLOPs of the ConvNet-4 forward for `images` images (multiply-adds x 2):
 * sum over blocks of 2 * 9 * cin * C * side^2 * images, side halving after each block.
 * Every implementation is measured against this same count.
 */
export function convFlops(c: number, images: number, size = 28, blocks = 4, cin = 1): number {
  let f = 0, s = size, ci = cin;
  for (let l = 0; l < blocks; l++) {
    f += 2 * 9 * ci * c * s * s * images;
    ci = c;
    s = Math.floor(s / 2);
  }
  return f;
}
