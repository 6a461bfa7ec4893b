/**
 * Time per backprop training episode (forward on the tape + backward + Adam
 * step) on real Omniglot, and the tape's exact peak bytes.
 *   node dist/bench/backprop-episode.js [--device cpu-ts] [--channels 64] [--way 60] [--shot 5] [--query 15] [--reps 2]
 * Prints one JSON line per device run.
 */
import '../lib/index.js';
import { getDevice } from '../lib/device/registry.js';
import { loadOmniglot } from '../lib/data/omniglot.js';
import { getSplit } from '../lib/data/splits.js';
import { EpisodeSampler } from '../lib/data/sampler.js';
import { BackpropMethod } from '../lib/methods/backprop/method.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const channels = Number(arg('channels', '64')), way = Number(arg('way', '60')), shot = Number(arg('shot', '5')), query = Number(arg('query', '15'));
const reps = Number(arg('reps', '2'));
const device = getDevice(arg('device', '') || undefined);
const ds = loadOmniglot({ imageSize: 28 });
const train = new EpisodeSampler(getSplit(ds, 'vinyals', 'train'), { way, shot, query, seed: 0 });
const t = BackpropMethod.create({ model: { channels, imageSize: 28 }, train: { way, shot, query }, valEpisodes: 0, episodes: reps }, { train }, { device });
const secs: number[] = [];
let peak = 0;
for (let i = 0; i < reps; i++) {
  const r = await t.trainStep();
  secs.push(r.stepS!);
  peak = r.tapePeakBytes!;
}
console.log(JSON.stringify({
  bench: 'backprop-episode', device: device.name, isa: device.info().isa ?? null, channels, way, shot, query, images: way * (shot + query),
  params: t.layout.numParams, episode_s: secs, median_s: [...secs].sort((a, b) => a - b)[Math.floor(secs.length / 2)], tape_peak_bytes: peak,
}));
