/**
 * JVP of the rotation: y = rotate(x, a) is linear in x, so
 *   dy = rotate(dx, a) + (d y / d a) da,
 * with rotate(dx, a) run on the device for all K tangents at once (K*N images) and
 * d y / d a the per-pixel derivative map of the reference kernel (the floor convention of
 * OpSpecs.rotateBackward, so this JVP is the transpose of the tape's gradient).
 */
import type { Device } from '../device/registry.js';
import { rotateAngleDerivative } from '../device/cpu-ts/rotate.js';
import { Tensor, allocLike } from '../tensor/tensor.js';
import type { Dual } from './dual.js';

export function rotateJvp(device: Device, k: number, x: Dual, angle: Dual, y: Tensor): Tensor | null {
  if (!x.t && !angle.t) return null;
  const per = y.size;
  const out = x.t
    ? device.run('rotate', { x: x.t.reshape([k * x.v.shape[0]!, ...x.v.shape.slice(1)]), angle: angle.v }, {}).data
    : allocLike(y.data, k * per);
  if (angle.t) {
    const d = rotateAngleDerivative(x.v, angle.v).data;
    for (let kk = 0; kk < k; kk++) {
      const ta = angle.t.data[kk]!;
      if (ta === 0) continue;
      for (let i = 0; i < per; i++) out[kk * per + i] += ta * d[i]!;
    }
  }
  return new Tensor(out, [k, ...y.shape]);
}
