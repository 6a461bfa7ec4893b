/**
 * Training-state helpers shared by the methods' exact-resume tests: a state as a checkpoint file
 * would carry it back (copies of the tensors, meta through JSON), and a bit-for-bit comparison.
 */
import * as assert from 'uvu/assert';
import type { MethodState } from '../../lib/train/method.js';

/** The state after a round trip through a file: copied tensors, meta through JSON. */
export function viaFile(s: MethodState): MethodState {
  return { tensors: Object.fromEntries(Object.entries(s.tensors).map(([k, v]) => [k, v.slice()])), meta: JSON.parse(JSON.stringify(s.meta)) as Record<string, unknown> };
}

const bytes = (t: MethodState['tensors'][string]): Buffer => Buffer.from(t.buffer, t.byteOffset, t.byteLength);

/** The same tensor names with identical bytes, and equal meta. */
export function assertSameState(a: MethodState, b: MethodState): void {
  assert.equal(Object.keys(a.tensors).sort(), Object.keys(b.tensors).sort());
  for (const k of Object.keys(a.tensors)) assert.ok(bytes(a.tensors[k]!).equals(bytes(b.tensors[k]!)), `tensor ${k} differs`);
  assert.equal(a.meta, b.meta);
}
