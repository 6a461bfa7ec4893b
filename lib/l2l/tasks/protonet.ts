/**
 * The ConvNet-4 ProtoNet as an optimizee (the learned optimizer's third
 * family): task (part, index) is a freshly initialized ConvNet-4 (channels
 * drawn from `channels`, init seed from the task) trained on a stream of
 * few-shot episodes of the Vinyals split's part -- optimizee step t uses
 * episode t of the task's sampler -- with the episode loss and its gradient
 * from the tape (BN in batch mode). evaluate() is the mean query accuracy and
 * loss on `evalEpisodes` other episodes of the same part.
 */
import { getDevice, type Device } from '../../device/registry.js';
import { episodeGradient } from '../../autodiff/protonet.js';
import { DirectOps } from '../../ops/api.js';
import { episodeLoss, type Episode } from '../../model/protonet.js';
import { initialBnState, ProtoNetLayout, type BnState } from '../../model/layout.js';
import { initParams } from '../../model/init.js';
import { Rng, STREAM } from '../../rng/philox.js';
import { allocLike, type FloatArray } from '../../tensor/tensor.js';
import { loadOmniglot, type OmniglotDataset } from '../../data/omniglot.js';
import { getSplit } from '../../data/splits.js';
import { EpisodeSampler } from '../../data/sampler.js';
import { taskLane, type OptimizeeTask, type TaskEval, type TaskFamily, type TaskPart } from './task.js';

export interface ProtoNetTaskConfig {
  family: 'protonet';
  /** ConvNet-4 channels of each task, drawn uniformly from this list ([8]). */
  channels: number[];
  imageSize: number;
  way: number;
  shot: number;
  query: number;
  evalEpisodes: number;
  dataDir?: string;
  seed: number;
}

export const DEFAULT_PROTONET_TASK: ProtoNetTaskConfig = { family: 'protonet', channels: [8], imageSize: 28, way: 5, shot: 1, query: 5, evalEpisodes: 8, seed: 0 };

export function checkProtoNetTaskConfig(c: ProtoNetTaskConfig): void {
  if (!Array.isArray(c.channels) || c.channels.length === 0 || !c.channels.every((x) => Number.isInteger(x) && x >= 1)) throw new RangeError(`protonet: channels must be a non-empty list of positive integers, got ${JSON.stringify(c.channels)}`);
  for (const k of ['imageSize', 'way', 'shot', 'query', 'evalEpisodes'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new RangeError(`protonet: ${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.way < 2) throw new RangeError(`protonet: way must be >= 2, got ${c.way}`);
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff) throw new RangeError(`protonet: seed must be an integer in [0, 2^32), got ${c.seed}`);
}

export class ProtoNetTask implements OptimizeeTask {
  readonly family = 'protonet';
  readonly n: number;
  readonly shapeKey: string;
  private readonly bn: BnState;
  private evalSet: Episode[] | null = null;
  constructor(readonly part: TaskPart, readonly index: number, readonly layout: ProtoNetLayout, private readonly device: Device,
    private readonly train: EpisodeSampler, private readonly evalSampler: EpisodeSampler, private readonly evalCount: number, private readonly theta0: Float32Array) {
    this.n = layout.numParams;
    this.shapeKey = `protonet:${layout.config.channels}x${layout.config.imageSize}`;
    this.bn = initialBnState(layout);
  }

  initialParams(like: FloatArray): FloatArray {
    const t = allocLike(like, this.n);
    t.set(this.theta0);
    return t;
  }

  lossGrad(theta: FloatArray, step: number, grad: FloatArray): number {
    return episodeGradient(this.device, this.layout, theta, this.bn, this.train.episode(step), { bn: 'batch' }, grad).loss;
  }

  evaluate(theta: FloatArray): TaskEval {
    this.evalSet ??= Array.from({ length: this.evalCount }, (_, i) => this.evalSampler.episode(i));
    const ops = new DirectOps(this.device);
    let loss = 0, acc = 0;
    for (const ep of this.evalSet) {
      const o = episodeLoss(ops, this.layout, theta, this.bn, ep, { bn: 'batch' });
      loss += o.loss.data[0]!;
      acc += this.device.run('accuracy', { scores: o.logits, labels: ep.queryLabels }, {});
    }
    return { loss: loss / this.evalSet.length, accuracy: acc / this.evalSet.length };
  }
}

export class ProtoNetTaskFamily implements TaskFamily {
  readonly name = 'protonet';
  private data: OmniglotDataset | null = null;
  private readonly device: Device;
  constructor(readonly config: ProtoNetTaskConfig, device?: string) {
    checkProtoNetTaskConfig(config);
    this.device = getDevice(device);
  }

  task(part: TaskPart, index: number): ProtoNetTask {
    const c = this.config;
    this.data ??= loadOmniglot({ imageSize: c.imageSize, ...(c.dataDir !== undefined ? { dataDir: c.dataDir } : {}) });
    const split = getSplit(this.data, 'vinyals', part);
    const rng = new Rng(c.seed, STREAM.general, taskLane(part, index));
    const layout = new ProtoNetLayout({ channels: c.channels[rng.int(c.channels.length)]!, imageSize: c.imageSize });
    const shape = { way: c.way, shot: c.shot, query: c.query };
    const s1 = rng.nextUint32(), s2 = rng.nextUint32(), s3 = rng.nextUint32();
    return new ProtoNetTask(part, index, layout, this.device, new EpisodeSampler(split, { ...shape, seed: s1 }), new EpisodeSampler(split, { ...shape, seed: s2 }), c.evalEpisodes, initParams(layout, s3));
  }
}
