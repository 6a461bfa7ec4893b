/**
 * Raw Omniglot (Lake et al.): 1623 characters of 50 alphabets, 20 drawings
 * each, 105x105 binary images. The in-memory form shared by the zip reader,
 * the embedded copy and the preprocessing: a character table plus one packed
 * bit array, 1 = ink (a black pixel in Lake's PNGs), row-major, MSB first,
 * each row padded to whole bytes (14 bytes for 105 pixels), images back to back.
 */

/** Side of Lake's images. */
export const RAW_SIZE = 105;
/** Pixels per raw image. */
export const RAW_PIXELS = RAW_SIZE * RAW_SIZE;
/** Bytes per packed row (105 bits padded to 112). */
export const RAW_ROW_BYTES = Math.ceil(RAW_SIZE / 8);
/** Bytes per packed raw image. */
export const RAW_BYTES = RAW_SIZE * RAW_ROW_BYTES;
/** Drawings per character in Omniglot. */
export const DRAWINGS = 20;

export type OmniglotSet = 'background' | 'evaluation';

export interface RawCharacter {
  /** Which of Lake's zips it comes from. */
  set: OmniglotSet;
  /** Alphabet folder name, e.g. 'Alphabet_of_the_Magi'. */
  alphabet: string;
  /** Character folder name, e.g. 'character01'. */
  character: string;
  /** The 20 drawing file names, sorted, e.g. '0709_01.png'. */
  drawings: readonly string[];
}

export interface RawOmniglot {
  /** Sorted by set (background first), then alphabet, then character. */
  characters: readonly RawCharacter[];
  /** characters.length * DRAWINGS images of RAW_BYTES bytes; image i = character floor(i / 20), drawing i % 20. */
  bits: Uint8Array;
}

/** 'Alphabet/characterNN': the key used by split files. */
export function characterKey(c: { alphabet: string; character: string }): string {
  return `${c.alphabet}/${c.character}`;
}

/** Ink (1) or background (0) at row y, column x of raw image `image`. */
export function rawPixel(raw: RawOmniglot, image: number, y: number, x: number): number {
  return (raw.bits[image * RAW_BYTES + y * RAW_ROW_BYTES + (x >> 3)]! >> (7 - (x & 7))) & 1;
}

/** Unpack one raw image to 0/1 bytes (length RAW_PIXELS). */
export function unpackRaw(bits: Uint8Array, image: number, out: Uint8Array = new Uint8Array(RAW_PIXELS)): Uint8Array {
  for (let y = 0; y < RAW_SIZE; y++) {
    const row = image * RAW_BYTES + y * RAW_ROW_BYTES;
    for (let x = 0; x < RAW_SIZE; x++) out[y * RAW_SIZE + x] = (bits[row + (x >> 3)]! >> (7 - (x & 7))) & 1;
  }
  return out;
}

/** Pack 0/1 pixels (length RAW_PIXELS) into image slot `image` of `bits`. */
export function packRaw(pixels: ArrayLike<number>, bits: Uint8Array, image: number): void {
  bits.fill(0, image * RAW_BYTES, (image + 1) * RAW_BYTES);
  for (let y = 0; y < RAW_SIZE; y++) {
    const row = image * RAW_BYTES + y * RAW_ROW_BYTES;
    for (let x = 0; x < RAW_SIZE; x++) if (pixels[y * RAW_SIZE + x]) bits[row + (x >> 3)] = bits[row + (x >> 3)]! | (0x80 >> (x & 7));
  }
}

/** Canonical order: background before evaluation, then alphabet, then character (code-point order). */
export function compareCharacters(a: RawCharacter, b: RawCharacter): number {
  if (a.set !== b.set) return a.set === 'background' ? -1 : 1;
  if (a.alphabet !== b.alphabet) return a.alphabet < b.alphabet ? -1 : 1;
  return a.character < b.character ? -1 : a.character > b.character ? 1 : 0;
}
