/**
 * Loading Omniglot: from the embedded copy (default) or a --data directory with
 * Lake's zips, preprocessed to S x S area sums, through the binary cache.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { embeddedDir, embeddedPath, loadEmbedded } from './embedded.js';
import { sha256Hex } from './hash.js';
import { OmniglotDataError } from './errors.js';
import { lakeZipFiles, readLakeZips } from './lake-zip.js';
import { cacheFile, CACHE_FORMAT, defaultCacheDir, readCache, writeCache } from './cache.js';
import { downsampleAll, rotatedImageInto, type AreaSums, type Rotation } from './preprocess.js';
import { characterKey, DRAWINGS, RAW_SIZE, type RawCharacter, type RawOmniglot } from './raw.js';

/** Bumped whenever the preprocessing changes meaning, so old cache files are not reused. */
const PREPROCESS_VERSION = 'area-average-ink1-v1';

export interface LoadProgress {
  /** 'reading zips' | 'decoding PNGs' | 'reading embedded copy' | 'downsampling' | 'writing cache' */
  phase: string;
  done: number;
  total: number;
}

export interface LoadOmniglotOptions {
  /** A directory with Lake's images_background.zip and images_evaluation.zip (optionally splits/vinyals/*.txt). Default: the embedded copy. */
  dataDir?: string;
  /** Output side S (default 28; the paper's split uses 32). */
  imageSize?: number;
  /** Cache directory (default defaultCacheDir()); false disables the cache. */
  cacheDir?: string | false;
  /** Called during a first (uncached) load. */
  onProgress?: (p: LoadProgress) => void;
  /**
   * Called with a one-line warning the user should see (the CLI prints it on stderr; the library
   * prints nothing): a cache directory that cannot be written, once per directory per process.
   */
  onWarning?: (message: string) => void;
}

/** Cache directories already warned about in this process. */
const warnedCacheDirs = new Set<string>();

export type CacheStatus = 'hit' | 'built' | 'rebuilt' | 'disabled' | 'write-failed';

export interface CacheInfo {
  status: CacheStatus;
  path: string | null;
  /** Why the cache was (re)built or not written: 'missing', 'corrupt: ...', an I/O error. */
  reason?: string;
}

export interface DataSource {
  kind: 'embedded' | 'zips';
  /** The embedded file, or the --data directory. */
  path: string;
  /** Where split files are read from (the --data directory's splits/ when present, else the embedded ones). */
  splitsDir: string;
}

/** Omniglot at one image size: 1623 characters x 20 drawings, unrotated S x S area sums. */
export class OmniglotDataset {
  private readonly byKey: Map<string, number>;

  constructor(
    readonly imageSize: number,
    readonly characters: readonly RawCharacter[],
    /** [numImages, S, S] integer area sums: pixel value = sum / denominator; image = character * 20 + drawing. */
    readonly sums: AreaSums,
    readonly denominator: number,
    readonly source: DataSource,
    readonly cache: CacheInfo,
  ) {
    if (sums.length !== characters.length * DRAWINGS * imageSize * imageSize) {
      throw new RangeError(`dataset: ${sums.length} values for ${characters.length} characters at ${imageSize}x${imageSize}`);
    }
    this.byKey = new Map(characters.map((c, i) => [characterKey(c), i]));
  }

  get numCharacters(): number { return this.characters.length; }
  get numImages(): number { return this.characters.length * DRAWINGS; }
  get drawingsPerCharacter(): number { return DRAWINGS; }

  /** Index of 'Alphabet/characterNN', or -1. */
  characterIndex(key: string): number {
    return this.byKey.get(key) ?? -1;
  }

  /** Write drawing `drawing` of character `character`, rotated, as floats in [0, 1] (ink = 1) to out[offset..offset+S*S). */
  imageInto(character: number, drawing: number, rotation: Rotation, out: Float32Array | Float64Array, offset = 0): void {
    if (!(character >= 0 && character < this.characters.length) || !Number.isInteger(character)) throw new RangeError(`character ${character} out of range [0, ${this.characters.length})`);
    if (!(drawing >= 0 && drawing < DRAWINGS) || !Number.isInteger(drawing)) throw new RangeError(`drawing ${drawing} out of range [0, ${DRAWINGS})`);
    rotatedImageInto(this.sums, this.imageSize, this.denominator, character * DRAWINGS + drawing, rotation, out, offset);
  }

  /** One image as a new Float32Array of S*S. */
  image(character: number, drawing: number, rotation: Rotation = 0): Float32Array {
    const out = new Float32Array(this.imageSize * this.imageSize);
    this.imageInto(character, drawing, rotation, out, 0);
    return out;
  }
}

function resolveSource(dataDir: string | undefined): { source: DataSource; contentKey: () => string; read: (p?: LoadOmniglotOptions['onProgress']) => RawOmniglot } {
  if (dataDir === undefined) {
    const path = embeddedPath();
    if (!existsSync(path)) loadEmbedded(path); // throws the clear error
    return {
      source: { kind: 'embedded', path, splitsDir: join(embeddedDir(), 'splits') },
      contentKey: () => sha256Hex(readFileSync(path)),
      read: (p) => {
        p?.({ phase: 'reading embedded copy', done: 0, total: 1 });
        return loadEmbedded(path);
      },
    };
  }
  const dir = resolve(dataDir);
  const zips = lakeZipFiles(dir);
  const own = join(dir, 'splits');
  return {
    source: { kind: 'zips', path: dir, splitsDir: existsSync(join(own, 'vinyals')) ? own : join(embeddedDir(), 'splits') },
    contentKey: () => sha256Hex(...zips.map((z) => readFileSync(z.path))),
    read: (p) => readLakeZips(dir, p ? (done, total, phase) => p({ phase, done, total }) : undefined),
  };
}

/**
 * Load Omniglot at `imageSize` (default 28). A cache hit reads one file; otherwise the
 * source is decoded and downsampled (seconds for the embedded copy, longer for zips)
 * and the cache written. Throws OmniglotDataError for bad input (naming the file).
 */
export function loadOmniglot(opts: LoadOmniglotOptions = {}): OmniglotDataset {
  const size = opts.imageSize ?? 28;
  if (!Number.isInteger(size) || size < 1 || size > RAW_SIZE) {
    throw new OmniglotDataError(`image size ${size}: Omniglot's ${RAW_SIZE}x${RAW_SIZE} images can be downsampled to any integer size in [1, ${RAW_SIZE}]`);
  }
  const { source, contentKey, read } = resolveSource(opts.dataDir);
  const useCache = opts.cacheDir !== false;
  let cache: CacheInfo = { status: 'disabled', path: null };
  let key = '';
  const dir = typeof opts.cacheDir === 'string' ? opts.cacheDir : defaultCacheDir();
  if (useCache) {
    key = sha256Hex(Buffer.from(`${CACHE_FORMAT}|${PREPROCESS_VERSION}|${size}|${source.kind}|`), Buffer.from(contentKey()));
    const path = cacheFile(dir, size, key);
    const hit = readCache(path, key, size);
    if (hit.ok) return new OmniglotDataset(size, hit.value.characters, hit.value.sums, hit.value.denominator, source, { status: 'hit', path });
    cache = { status: hit.reason === 'missing' ? 'built' : 'rebuilt', path, reason: hit.reason };
  }
  const raw = read(opts.onProgress);
  const { sums, denominator } = downsampleAll(raw, size, opts.onProgress ? (done, total) => opts.onProgress!({ phase: 'downsampling', done, total }) : undefined);
  if (useCache && cache.path) {
    opts.onProgress?.({ phase: 'writing cache', done: 0, total: 1 });
    try {
      writeCache(cache.path, key, size, { characters: [...raw.characters], sums, denominator });
    } catch (e) {
      const reason = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      cache = { status: 'write-failed', path: cache.path, reason: (e as Error).message };
      if (opts.onWarning && !warnedCacheDirs.has(dir)) {
        warnedCacheDirs.add(dir);
        opts.onWarning(`cannot write the Omniglot cache in ${dir} (${reason}): the images will be preprocessed again on every run; pass --cache DIR or set EVOMETA_CACHE to a writable directory`);
      }
    }
  }
  return new OmniglotDataset(size, raw.characters, sums, denominator, source, cache);
}
