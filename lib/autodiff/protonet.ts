/** The ProtoNet episode loss and its gradient with respect to the flat parameter vector, by the tape. */
import type { Device } from '../device/registry.js';
import type { BnState, ProtoNetLayout } from '../model/layout.js';
import { episodeLoss, type Episode, type LossOptions } from '../model/protonet.js';
import { allocLike, type FloatArray } from '../tensor/tensor.js';
import { Tape, layoutLeaves } from './tape.js';
import type { MemoryBreakdown } from './memory.js';

export interface EpisodeGradient {
  loss: number;
  /** Query accuracy of the episode (argmax of the logits). */
  accuracy: number;
  /** d loss / d params, same length and dtype as params. */
  grad: FloatArray;
  /** Peak bytes held by the tape (see Tape.bytesHeld) and the breakdown at that moment. */
  peakBytes: number;
  peakMemory: MemoryBreakdown;
}

/**
 * Forward on a tape, then backward. `grad`, if given, is overwritten (zeroed
 * first). BN running statistics are updated iff opts.trackStats is set.
 */
export function episodeGradient(
  device: Device, layout: ProtoNetLayout, params: FloatArray, bn: BnState, ep: Episode, opts: LossOptions, grad?: FloatArray,
): EpisodeGradient {
  const g = grad ?? allocLike(params, params.length);
  if (g.length !== params.length) throw new RangeError(`episodeGradient: gradient vector has ${g.length} elements, parameters ${params.length}`);
  g.fill(0);
  // Nothing the device returns escapes this function (the loss and accuracy are numbers, the
  // gradient is ours), so its large outputs can come from a pool reused step after step.
  const step = (): EpisodeGradient => {
    const tape = new Tape(device);
    const out = episodeLoss(tape, layout, params, bn, ep, opts, layoutLeaves(tape, layout));
    const loss = out.loss.value.data[0]!;
    const accuracy = device.run('accuracy', { scores: out.logits.value, labels: ep.queryLabels }, {});
    tape.backward(out.loss, g);
    return { loss, accuracy, grad: g, peakBytes: tape.peakBytes, peakMemory: tape.peakMemory() };
  };
  return device.outputScope ? device.outputScope(step) : step();
}
