/**
 * The scaling model of distributed ES over Redis (docs/distributed.md has the
 * derivation). One step with W worker processes of one thread each, S shards
 * (units), population P, D parameters:
 *
 *   T(W) = T0 + ceil(S / W) * (t_unit + o_unit) + S * o_coord + bytes(W) / BW + R(W)
 *
 *   T0      fixed per step: publishing the step (one transaction), the clean-up round trip, the update
 *   t_unit  compute of one shard: (P/S) * t_member (+ its noise sums (P/S) * D * t_noise, sync mean)
 *   o_unit  a worker's own per-unit cost around the compute (round trips, (de)serializing)
 *   o_coord the coordinator's per-result cost (reading, checking, adding a D-vector: D * t_add)
 *   bytes   what the Redis server sends and receives per step (payload, the formulas of bytesPerStep)
 *   R(W)    replicated work of sync 'fitness': the coordinator, then every worker (for the next step's mean),
 *           makes all P noise vectors: 2 * P * D * t_noise, one after the other
 *
 * Workers run in parallel; the coordinator handles results one after the
 * other; Redis serializes bytes on its link.
 */

export interface ModelParams {
  t0: number;
  oUnit: number;
  oCoord: number;
  /** Seconds per member evaluation. */
  tMember: number;
  /** Seconds per noise element (one member, one parameter: generate + multiply-add). */
  tNoise: number;
  /** Seconds per float64 addition on the coordinator (summing estimates). */
  tAdd: number;
  /** Bytes per second of the Redis server's link. */
  bw: number;
}

export interface StepShape { P: number; S: number; D: number; W: number; sync: 'mean' | 'fitness'; scheme: 'paper' | 'openai'; square?: boolean; /** Per-parameter sigmas (PGPE, SNES): sent with the mean. */ diagonal?: boolean }

/** Fixed size of a unit message and of a result's fields besides its arrays (bytes, measured order of magnitude). */
export const UNIT_BYTES = 120;
export const RESULT_FIELDS_BYTES = 110;

/**
 * Payload bytes per step through the Redis server (in: written to it; out: read from it), by sync and scheme:
 *   mean, paper:   blob 4D (8D with sigmas); results 8D (16D with square sums) + 8P/S per shard
 *   mean, openai:  blob 4D; results 8P/S per shard (the coordinator makes the noise sums)
 *   fitness:       blob 8P (the previous fitness); results 8P/S per shard; every worker makes the noise sums
 * Each of the W workers reads the blob once per step; each unit is written once and delivered once.
 */
export function bytesPerStep(s: StepShape): { input: number; output: number; blob: number; result: number } {
  const blob = s.sync === 'mean' ? 4 * s.D * (s.diagonal ? 2 : 1) : 8 * s.P;
  const est = s.sync === 'mean' && s.scheme === 'paper';
  const result = RESULT_FIELDS_BYTES + 8 * (s.P / s.S) + (est ? 8 * s.D * (s.square ? 2 : 1) : 0);
  const units = s.S * UNIT_BYTES;
  return { input: blob + units + s.S * result, output: Math.min(s.W, s.S) * blob + units + s.S * result, blob, result };
}

export function stepSeconds(p: ModelParams, s: StepShape): { total: number; compute: number; coordinator: number; network: number; replicated: number } {
  const per = s.P / s.S;
  const est = s.sync === 'mean' && s.scheme === 'paper';
  const tUnit = per * p.tMember + (est ? per * s.D * p.tNoise * (s.square ? 2 : 1) : 0);
  const compute = Math.ceil(s.S / s.W) * (tUnit + p.oUnit);
  const coordinator = s.S * (p.oCoord + (est ? s.D * p.tAdd : 0)) + (s.sync === 'mean' && !est ? s.P * s.D * p.tNoise : 0);
  const b = bytesPerStep(s);
  const network = (b.input + b.output) / p.bw;
  const replicated = s.sync === 'fitness' ? 2 * s.P * s.D * p.tNoise : 0;
  return { total: p.t0 + compute + coordinator + network + replicated, compute, coordinator, network, replicated };
}
