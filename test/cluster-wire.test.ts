/**
 * What a worker or the coordinator accepts from Redis, without a server:
 * blobs, units, results, run metadata and step blobs are parsed and checked
 * field by field, lengths included; a config that does not pass the CLI's
 * validation, a hash that does not match, a step that disagrees with the
 * config, episodes that differ or a mean that does not hash to the step's
 * state are refused with a message that names what was wrong.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { resolveEsConfig, type EsConfig } from '../lib/methods/protonet-es/config.js';
import { strategyFor } from '../lib/methods/protonet-es/method.js';
import { SyntheticEpisodes, type SyntheticOptions } from '../lib/data/synthetic.js';
import { UserError } from '../lib/errors.js';
import { redactUrl } from '../lib/cluster/connect.js';
import { parseResult, parseUnit, perturbationHeader, PROTOCOL, resultFields, STEP_MAGIC, unitFields, type Expect, type StepHeader } from '../lib/cluster/protocol.js';
import { configHash, parseRunMeta, RunContext, type RunMeta } from '../lib/cluster/protonet.js';
import { meanFromBlob, readStepBlob } from '../lib/cluster/step-state.js';
import { canonicalJson, episodeDigest, packBlob, stateHash, unpackBlob, WireError } from '../lib/cluster/wire.js';

const b = (xs: Array<string | Buffer>): Buffer[] => xs.map((x) => (Buffer.isBuffer(x) ? x : Buffer.from(x)));

function throwsWire(f: () => unknown, re: RegExp, cls: new (...a: never[]) => Error = WireError): void {
  let err: unknown = null;
  try { f(); } catch (e) { err = e; }
  assert.instance(err, cls, `expected a ${cls.name} matching ${re}, got ${String(err)}`);
  assert.match((err as Error).message, re);
}

test('blobs: round trip; wrong magic, truncation, trailing bytes, oversized header, duplicate sections refused', () => {
  const mu = Float32Array.from([1.5, -2, 3]), f = Float64Array.from([0.25, NaN]);
  const blob = packBlob('EVOTEST1', { a: 1 }, { mu, f });
  const u = unpackBlob(blob, 'EVOTEST1', 't');
  assert.equal(u.header, { a: 1 });
  assert.equal([...u.sections.get('mu')!], [...mu]);
  assert.ok(Number.isNaN(u.sections.get('f')![1]!));
  throwsWire(() => unpackBlob(blob, 'EVOSTEP1', 't'), /not a EVOSTEP1 blob/);
  throwsWire(() => unpackBlob(blob.subarray(0, blob.length - 1), 'EVOTEST1', 't'), /section f runs past the end/);
  throwsWire(() => unpackBlob(Buffer.concat([blob, Buffer.alloc(3)]), 'EVOTEST1', 't'), /3 bytes after the last section/);
  const big = Buffer.from(blob);
  big.writeUInt32LE(2 ** 30, 8);
  throwsWire(() => unpackBlob(big, 'EVOTEST1', 't'), /header length \d+ out of bounds/);
  const h = Buffer.from(JSON.stringify({ sections: [{ name: 'x', dtype: 'f32', length: 1 }, { name: 'x', dtype: 'f32', length: 1 }] }));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(h.length);
  throwsWire(() => unpackBlob(Buffer.concat([Buffer.from('EVOTEST1'), len, h, Buffer.alloc(8)]), 'EVOTEST1', 't'), /section x appears twice/);
  const h2 = Buffer.from(JSON.stringify({ sections: [{ name: 'x', dtype: 'i32', length: 1 }] }));
  len.writeUInt32LE(h2.length);
  throwsWire(() => unpackBlob(Buffer.concat([Buffer.from('EVOTEST1'), len, h2, Buffer.alloc(4)]), 'EVOTEST1', 't'), /dtype "i32"/);
});

test('units: parsed with every field checked', () => {
  const f = unitFields({ run: 'r-1', step: 3, unit: 2, units: 4, kind: 'estimate', hash: 'a'.repeat(64) });
  assert.equal(parseUnit(b(f)), { run: 'r-1', step: 3, unit: 2, units: 4, kind: 'estimate', hash: 'a'.repeat(64) });
  const set = (k: string, v: string): Buffer[] => b(f.map((x, i) => (i > 0 && f[i - 1] === k ? v : x)));
  throwsWire(() => parseUnit(set('unit', '4')), /field unit = 4 is not an integer in \[0, 3\]/);
  throwsWire(() => parseUnit(set('kind', 'exec')), /field kind is malformed/);
  throwsWire(() => parseUnit(set('run', 'a b')), /field run is malformed/);
  throwsWire(() => parseUnit(set('v', '2')), /protocol 2/);
  throwsWire(() => parseUnit(set('hash', 'x'.repeat(64))), /field hash is malformed/);
  throwsWire(() => parseUnit(b(f.slice(0, -2))), /field hash is missing/);
  throwsWire(() => parseUnit(b([...f, 'step', '1'])), /field step appears twice/);
  throwsWire(() => parseUnit(['v', 1]), /fields are not a key\/value list|is not binary/);
});

test('results: stale ones named, lengths checked against the step, failures carried', () => {
  const e: Expect = { run: 'r', step: 2, kind: 'estimate', units: 2, members: () => 3, dim: 5, square: false };
  const ok = { run: 'r', step: 2, unit: 1, kind: 'estimate' as const, worker: 'w', fitness: new Float64Array(3), linear: new Float64Array(5), nonFinite: 0, degenerate: 0, evalSeconds: 0.5, sumSeconds: 0.1 };
  const p = parseResult(b(resultFields(ok)), e);
  assert.is(p.type, 'ok');
  assert.equal(parseResult(b(resultFields({ ...ok, step: 1 })), e), { type: 'stale', why: 'step 1' });
  assert.equal(parseResult(b(resultFields({ ...ok, run: 'other' })), e), { type: 'stale', why: 'run other' });
  throwsWire(() => parseResult(b(resultFields({ ...ok, fitness: new Float64Array(4) })), e), /fitness of unit 1: 4 values, expected 3/);
  throwsWire(() => parseResult(b(resultFields({ ...ok, linear: new Float64Array(4) })), e), /noise sum of unit 1: 4 values, expected 5/);
  throwsWire(() => parseResult(b(resultFields({ ...ok, square: new Float64Array(5) })), e), /square noise sum this step does not use/);
  throwsWire(() => parseResult(b(resultFields({ ...ok, nonFinite: 4 })), e), /nonfinite = 4/);
  throwsWire(() => parseResult(b(resultFields({ ...ok, evalSeconds: NaN })), e), /evals/);
  const fail = parseResult(b(['v', String(PROTOCOL), 'run', 'r', 'step', '2', 'unit', '0', 'kind', 'estimate', 'worker', 'w', 'error', 'boom']), e);
  assert.equal(fail, { type: 'failure', failure: { run: 'r', step: 2, unit: 0, kind: 'estimate', worker: 'w', error: 'boom' } });
});

const TRAIN: SyntheticOptions = { way: 3, shot: 1, query: 2, imageSize: 16, seed: 4 };
const cfg: EsConfig = resolveEsConfig({ model: { channels: 2, imageSize: 16 }, pop: 8, shards: 2, steps: 3, seed: 1, train: { way: 3, shot: 1, query: 2 }, sigma: 0.05 });
const meta: RunMeta = { v: PROTOCOL, run: 'run-1', version: '0.1.0', method: 'protonet-es', config: cfg, data: { kind: 'synthetic', train: TRAIN }, device: 'cpu-ts', sync: 'mean', hash: configHash(cfg, { kind: 'synthetic', train: TRAIN }, 'cpu-ts'), coordinator: 'host.1' };

test('run metadata: validated like the CLI, hashed, data source checked', () => {
  const m = parseRunMeta(JSON.stringify(meta), 'run-1');
  assert.is(canonicalJson(m.config), canonicalJson(cfg));
  throwsWire(() => parseRunMeta(JSON.stringify(meta), 'run-2'), /metadata names run "run-1"/);
  throwsWire(() => parseRunMeta(JSON.stringify({ ...meta, config: { ...cfg, lr: 2 } }), 'run-1'), /config hash mismatch/);
  throwsWire(() => parseRunMeta(JSON.stringify({ ...meta, config: { ...cfg, pop: 9 } }), 'run-1'), /does not pass validation: ES config: shards \(--shards\) must divide the population/);
  throwsWire(() => parseRunMeta(JSON.stringify({ ...meta, config: { ...cfg, sigma: -1 } }), 'run-1'), /sigma \(--sigma\) must be a finite number > 0/);
  const { lrFinal: _drop, ...partial } = cfg;
  throwsWire(() => parseRunMeta(JSON.stringify({ ...meta, config: partial }), 'run-1'), /not a resolved configuration|hash mismatch/);
  throwsWire(() => parseRunMeta(JSON.stringify({ ...meta, data: { kind: 'url', href: 'http://x' } }), 'run-1'), /data source .* is not one this worker knows/);
  throwsWire(() => parseRunMeta(JSON.stringify({ ...meta, data: { kind: 'synthetic', train: { ...TRAIN, imageSize: 8 } } }), 'run-1'), /imageSize 8 differs from the model's 16/);
  throwsWire(() => parseRunMeta(JSON.stringify({ ...meta, data: { kind: 'synthetic', train: { ...TRAIN, module: 'x.js' } } }), 'run-1'), /unknown field module/);
  throwsWire(() => parseRunMeta(JSON.stringify({ ...meta, method: 'shell' }), 'run-1'), /method "shell"/);
  throwsWire(() => parseRunMeta(JSON.stringify({ ...meta, device: '../../x' }), 'run-1'), /device .* is malformed/);
  throwsWire(() => parseRunMeta('{', 'run-1'), /not valid JSON/);
});

function stepBlob(t: number, over: Partial<StepHeader> = {}, mu?: Float32Array): Buffer {
  const s = strategyFor(cfg, new Float32Array(new RunContext(meta, {}).dim).fill(0.25));
  s.step = t;
  const g = s.ask();
  const eps = [new SyntheticEpisodes(TRAIN).episode(t)];
  const m = mu ?? g.center;
  const h: StepHeader = {
    v: PROTOCOL, run: 'run-1', step: t, hash: meta.hash, population: g.size, units: 2, kind: 'estimate', perturbation: perturbationHeader(g.perturbation),
    rule: s.ruleAt(t), square: false, episodes: { first: t, count: 1, digest: episodeDigest(eps) }, state: stateHash(g.center), prev: null, ...over,
  };
  return packBlob(STEP_MAGIC, h as unknown as Record<string, unknown>, { mu: m });
}

test('step blobs: checked against what the worker derives from the config, the episodes and the state hash', () => {
  const ctx = new RunContext(meta, {});
  const { header, blob } = readStepBlob(ctx, stepBlob(1), 1);
  const m = meanFromBlob(ctx, header, blob);
  assert.is(m.mu.length, ctx.dim);
  assert.ok(m.mu.every((x) => x === 0.25));
  throwsWire(() => readStepBlob(ctx, stepBlob(1), 2), /the blob is for run run-1 step 1/);
  throwsWire(() => readStepBlob(ctx, stepBlob(1, { population: 16 }), 1), /population 16, but the config gives 8/);
  throwsWire(() => readStepBlob(ctx, stepBlob(1, { units: 4 }), 1), /4 shards, the config has 2/);
  throwsWire(() => readStepBlob(ctx, stepBlob(1, { perturbation: { kind: 'gaussian', sigma: 0.5, antithetic: false } }), 1), /perturbation .* differs from the config's/);
  throwsWire(() => readStepBlob(ctx, stepBlob(1, { rule: { kind: 'nes', sigma: 0.05, baseline: false, nonFinite: 'worst' } }), 1), /weight rule .* differs from the config's/);
  throwsWire(() => readStepBlob(ctx, stepBlob(1, { rule: null }), 1), /an estimate step without a weight rule/);
  const bad = readStepBlob(ctx, stepBlob(1, {}, new Float32Array(ctx.dim).fill(0.5)), 1);
  throwsWire(() => meanFromBlob(ctx, bad.header, bad.blob), /the mean does not hash to the step's state/);
  const short = readStepBlob(ctx, stepBlob(1, {}, new Float32Array(ctx.dim - 1)), 1);
  throwsWire(() => meanFromBlob(ctx, short.header, short.blob), /section mu has \d+ values, expected \d+/);
  throwsWire(() => ctx.episodes(1, 1, 1, 'f'.repeat(64)), /this worker's episodes differ from the coordinator's/, UserError);
  throwsWire(() => ctx.episodes(1, 5, 1, 'f'.repeat(64)), /episodes 5\.\.5, but the config's step uses 1\.\.1/);
});

test('URLs are printed without their password', () => {
  assert.is(redactUrl('redis://:pw@h:1'), 'redis://:***@h:1');
  assert.is(redactUrl('rediss://user:pw@h:1/2'), 'rediss://user:***@h:1/2');
  assert.is(redactUrl('redis://pw@h:1'), 'redis://***@h:1');
  assert.is(redactUrl('redis://h:1'), 'redis://h:1');
});

test.run();
