/**
 * The rotation task (the paper's section 4.1 illustration, on Omniglot with ProtoNet): training
 * episodes are upright, validation and test episodes are rotated by a fixed angle, and the
 * learned hyperparameter lambda = [angle in degrees] rotates the training images (support and
 * query) on the tape before the ConvNet-4, so the hypergradient reaches it through the
 * rotation op. Angles are counter-clockwise (OpSpecs.rotate, lib/data/preprocess.ts).
 */
import type { Device } from '../device/registry.js';
import { DirectOps, type TensorOps } from '../ops/api.js';
import { episodeLoss, type Distance, type Episode } from '../model/protonet.js';
import type { BnState, ProtoNetLayout } from '../model/layout.js';
import type { EpisodeSource } from '../data/synthetic.js';
import type { OmniglotSplit } from '../data/splits.js';
import { Tensor, type FloatArray } from '../tensor/tensor.js';
import type { HyperProgram } from './objective.js';
import type { PopulationEvaluator } from '../es/population.js';
import type { ModelConfig } from '../model/layout.js';
import type { CopyLosses } from './population.js';

export const DEG = Math.PI / 180;

/** The angle (degrees) as an op value in radians: lambda[0] * pi / 180. */
function radians<V>(ops: TensorOps<V>, deg: V): V {
  return ops.scale(deg, DEG);
}

/**
 * Average over s x s blocks (a stride-s convolution with a constant kernel of 1/s^2): the last step of
 * a supersampled rotation, taking images of side s * S down to S. s = 1 returns x.
 */
export function poolImages<V>(ops: TensorOps<V>, x: V, s: number): V {
  if (s === 1) return x;
  const v = ops.value(x);
  const w = new Tensor(v.dtype === 'float64' ? new Float64Array(s * s).fill(1 / (s * s)) : new Float32Array(s * s).fill(1 / (s * s)), [1, 1, s, s]);
  return ops.conv2d(x, ops.constant(w), undefined, { stride: s, padding: 0 });
}

/**
 * ProtoNet's episode loss with the training images rotated by lambda[0] degrees. BN runs in
 * batch mode; its running statistics (`bn`) are updated only by the ordinary step (mode
 * 'theta'), never by the copies or the validation pass. With `rotateTrain` false the images are
 * not rotated at all (plain training; lambda is ignored).
 *
 * `supersample` s > 1: the training episodes' images have side s * S (S the model's image side);
 * they are rotated at that resolution and averaged over s x s blocks (poolImages), so the network
 * sees S x S images whose sharpness does not depend on the angle (docs/evograd.md: bilinear
 * rotation at S blurs every non-zero angle, which puts a cusp at 0 in the angle's landscape).
 * The validation episodes are at S (RotatedEpisodes pools them).
 */
export function rotationProgram(layout: ProtoNetLayout, bn: BnState, distance: Distance, rotateTrain = true, supersample = 1): HyperProgram<Episode, Episode> {
  return {
    train(ops, a, ep) {
      const leaf = (name: string, t: Tensor) => a.thetaLeaf(t, layout.param(name).offset);
      let transform: ((x: ReturnType<typeof ops.constant>) => ReturnType<typeof ops.constant>) | undefined;
      if (rotateTrain) {
        const angle = radians(ops, a.lambdaLeaf(new Tensor(a.lambda.subarray(0, 1), [1]), 0));
        transform = (x) => poolImages(ops, ops.rotate(x, angle), supersample);
      } else if (supersample > 1) {
        transform = (x) => poolImages(ops, x, supersample);
      }
      return episodeLoss(ops, layout, a.theta, bn, ep, { bn: 'batch', distance, ...(a.mode === 'theta' ? { trackStats: bn } : {}) }, leaf, transform).loss;
    },
    val(ops, a, ep) {
      const leaf = (name: string, t: Tensor) => a.thetaLeaf(t, layout.param(name).offset);
      return episodeLoss(ops, layout, a.theta, bn, ep, { bn: 'batch', distance }, leaf).loss;
    },
  };
}

/**
 * Rotate every image of an episode by `degrees` (bilinear, counter-clockwise) on `device`; with
 * `supersample` s > 1 the images (side s * S) are rotated at that resolution, then averaged over s x s
 * blocks down to S (also at 0 degrees, where the result is the area-downsampled S x S image).
 */
export function rotateEpisode(device: Device, ep: Episode, degrees: number, supersample = 1): Episode {
  if (degrees === 0 && supersample === 1) return ep;
  const ops = new DirectOps(device);
  const rot = (x: Tensor): Tensor => poolImages(ops, degrees === 0 ? x : device.run('rotate', { x, angle: Tensor.from([degrees * DEG], [1], x.dtype) }, {}), supersample);
  return { ...ep, support: rot(ep.support), query: rot(ep.query) };
}

/** Episodes of `base` with every image rotated by a fixed angle (the rotated validation and test episodes); `supersample` as rotateEpisode. */
export class RotatedEpisodes implements EpisodeSource {
  constructor(readonly base: EpisodeSource, readonly degrees: number, readonly device: Device, readonly supersample = 1) {
    if (!Number.isFinite(degrees)) throw new RangeError(`rotated episodes: angle must be finite, got ${degrees}`);
    if (!Number.isInteger(supersample) || supersample < 1) throw new RangeError(`rotated episodes: supersample must be an integer >= 1, got ${supersample}`);
  }

  episode(i: number): Episode {
    return rotateEpisode(this.device, this.base.episode(i), this.degrees, this.supersample);
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

/**
 * The copies' training losses for populationHypergradient (population.ts): the training episode
 * rotated by lambda[0] degrees (and pooled, `supersample`), K Gaussian copies of theta evaluated
 * forward by a population evaluator (BN in batch mode, running statistics untouched).
 */
export function rotationCopyLosses(evaluator: PopulationEvaluator, device: Device, model: ModelConfig, distance: Distance, supersample: number): CopyLosses<Episode> {
  return async (theta, lambda, ep, c, step) => {
    const episode = rotateEpisode(device, ep, lambda[0]!, supersample);
    const fitness = await evaluator.evaluate({
      mu: theta, perturbation: { kind: 'gaussian', sigma: c.sigma, antithetic: c.antithetic }, seed: c.seed, step, start: 0, end: c.copies, model, episode, distance,
    });
    return fitness.map((f) => -f);
  };
}
