/** Label checks shared by every device's prototypes kernels. */

/** Rows per class; throws a RangeError naming the label or the empty class. */
export function classCounts(labels: Int32Array, way: number, rows: number): Int32Array {
  if (labels.length !== rows) throw new RangeError(`prototypes: ${labels.length} labels for ${rows} support rows`);
  const counts = new Int32Array(way);
  for (const l of labels) {
    if (!(l >= 0 && l < way)) throw new RangeError(`prototypes: label ${l} outside [0, ${way})`);
    counts[l]!++;
  }
  const empty = counts.findIndex((c) => c === 0);
  if (empty >= 0) throw new RangeError(`prototypes: class ${empty} has no support example`);
  return counts;
}
