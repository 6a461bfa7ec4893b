/**
 * The rotation task (the paper's section 4.1 illustration, on Omniglot with ProtoNet): training
 * episodes are upright, validation and test episodes are rotated by a fixed angle, and the
 * learned hyperparameter lambda = [angle in degrees] rotates the training images (support and
 * query) on the tape before the ConvNet-4, so the hypergradient reaches it through the
 * rotation op. Angles are counter-clockwise (OpSpecs.rotate, lib/data/preprocess.ts).
 */
import type { Device } from '../device/registry.js';
import type { TensorOps } from '../ops/api.js';
import { episodeLoss, type Distance, type Episode } from '../model/protonet.js';
import type { BnState, ProtoNetLayout } from '../model/layout.js';
import type { EpisodeSource } from '../data/synthetic.js';
import type { OmniglotSplit } from '../data/splits.js';
import { Tensor, type FloatArray } from '../tensor/tensor.js';
import type { HyperProgram } from './objective.js';

export const DEG = Math.PI / 180;

/** The angle (degrees) as an op value in radians: lambda[0] * pi / 180. */
function radians<V>(ops: TensorOps<V>, deg: V): V {
  return ops.scale(deg, DEG);
}

/**
 * ProtoNet's episode loss with the training images rotated by lambda[0] degrees. BN runs in
 * batch mode; its running statistics (`bn`) are updated only by the ordinary step (mode
 * 'theta'), never by the copies or the validation pass. With `rotateTrain` false the images are
 * not rotated at all (plain training; lambda is ignored).
 */
export function rotationProgram(layout: ProtoNetLayout, bn: BnState, distance: Distance, rotateTrain = true): HyperProgram<Episode, Episode> {
  return {
    train(ops, a, ep) {
      const leaf = (name: string, t: Tensor) => a.thetaLeaf(t, layout.param(name).offset);
      const transform = rotateTrain
        ? (() => {
          const angle = radians(ops, a.lambdaLeaf(new Tensor(a.lambda.subarray(0, 1), [1]), 0));
          return (x: typeof angle) => ops.rotate(x, angle);
        })()
        : undefined;
      return episodeLoss(ops, layout, a.theta, bn, ep, { bn: 'batch', distance, ...(a.mode === 'theta' ? { trackStats: bn } : {}) }, leaf, transform).loss;
    },
    val(ops, a, ep) {
      const leaf = (name: string, t: Tensor) => a.thetaLeaf(t, layout.param(name).offset);
      return episodeLoss(ops, layout, a.theta, bn, ep, { bn: 'batch', distance }, leaf).loss;
    },
  };
}

/** Rotate every image of an episode by `degrees` (bilinear, counter-clockwise) on `device`. */
export function rotateEpisode(device: Device, ep: Episode, degrees: number): Episode {
  if (degrees === 0) return ep;
  const rot = (x: Tensor): Tensor => device.run('rotate', { x, angle: Tensor.from([degrees * DEG], [1], x.dtype) }, {});
  return { ...ep, support: rot(ep.support), query: rot(ep.query) };
}

/** Episodes of `base` with every image rotated by a fixed angle (the rotated validation and test episodes). */
export class RotatedEpisodes implements EpisodeSource {
  constructor(readonly base: EpisodeSource, readonly degrees: number, readonly device: Device) {
    if (!Number.isFinite(degrees)) throw new RangeError(`rotated episodes: angle must be finite, got ${degrees}`);
  }

  episode(i: number): Episode {
    return rotateEpisode(this.device, this.base.episode(i), this.degrees);
  }
}

/** The split's upright classes only (rotation 0): the task's training distribution has one orientation. */
export function uprightSplit(split: OmniglotSplit): OmniglotSplit {
  return { ...split, name: `${split.name}/upright`, classes: split.classes.filter((c) => c.rotation === 0) };
}

/** lambda as the tensor dtype of theta. */
export function angleVector(degrees: number, like: FloatArray): FloatArray {
  return like instanceof Float64Array ? Float64Array.of(degrees) : Float32Array.of(degrees);
}
