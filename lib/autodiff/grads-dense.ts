/**
 * The backward of the dense tape ops (matmul, broadcasting add/mul, sumTo,
 * sigmoid, tanh). Importing this module registers them. A broadcast operand's
 * gradient is the output gradient summed back to its shape (sumTo).
 */
import { Tensor, allocLike, sizeOf } from '../tensor/tensor.js';
import type { Device } from '../device/registry.js';
import { registerGradient } from './gradients.js';

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** dy summed to `shape` (dy itself when the shapes agree). */
function reduceTo(device: Device, dy: Tensor, shape: readonly number[]): Tensor {
  return sameShape(dy.shape, shape) ? dy : device.run('sumTo', { x: dy }, { shape });
}

/**
 * y = op(A) op(B). With G = dy: d op(A) = G op(B)^T and d op(B) = op(A)^T G;
 * a transposed operand takes the transpose of its part, so every case is one matmul.
 */
registerGradient('matmul', (dy, { device, saved: s, needs }) => {
  const { transA: ta, transB: tb } = s;
  const da = needs[0]
    ? (ta ? device.run('matmul', { a: s.b!, b: dy }, { transA: tb, transB: true }) : device.run('matmul', { a: dy, b: s.b! }, { transA: false, transB: !tb }))
    : undefined;
  const db = needs[1]
    ? (tb ? device.run('matmul', { a: dy, b: s.a! }, { transA: true, transB: ta }) : device.run('matmul', { a: s.a!, b: dy }, { transA: !ta, transB: false }))
    : undefined;
  return [da, db];
});

registerGradient('add', (dy, { device, saved: s, needs }) => [
  needs[0] ? dy : undefined,
  needs[1] ? reduceTo(device, dy, s.bShape) : undefined,
]);

registerGradient('mul', (dy, { device, saved: s, needs }) => [
  needs[0] ? device.run('mul', { a: dy, b: s.b! }, {}) : undefined,
  needs[1] ? reduceTo(device, device.run('mul', { a: dy, b: s.a! }, {}), s.bShape) : undefined,
]);

/** sumTo's adjoint is broadcasting dy back to the input's shape: zeros + dy. */
registerGradient('sumTo', (dy, { device, saved: s }) => [
  device.run('add', { a: new Tensor(allocLike(dy.data, sizeOf(s.inputShape)), s.inputShape), b: dy }, {}),
]);

registerGradient('sigmoid', (dy, { device, saved: s }) => [device.run('sigmoidBackward', { dy, y: s.y }, {})]);

registerGradient('tanh', (dy, { device, saved: s }) => [device.run('tanhBackward', { dy, y: s.y }, {})]);
