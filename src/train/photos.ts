// Subject photos, browser side: which files are accepted (format by their bytes, size, count, pixels),
// decoding with EXIF orientation, the square center crop at the model's resolution, and thumbnails.
import type { TrainingImage } from '../../workers/api';
import type { RgbaImage } from '../io/png';

export const PHOTO_LIMITS = {
  /** Fewer works but overfits the few; more rarely helps a single subject. */
  recommendedMin: 3,
  recommendedMax: 20,
  maxCount: 50,
  maxBytes: 25 * 2 ** 20,
  /** Short side in pixels below which a photo is rejected (raised to the model's resolution). */
  minSide: 64,
} as const;

export type PhotoFormat = 'jpeg' | 'png' | 'webp';
/** What the file picker offers: the photo formats, and .txt caption files named like a photo. */
export const ACCEPTED_TYPES = 'image/jpeg,image/png,image/webp,.jpg,.jpeg,.png,.webp,.txt,text/plain';

export type PhotoProblemCode =
  | 'empty'
  | 'too-large'
  | 'unsupported-image'
  | 'not-an-image'
  | 'corrupt'
  | 'too-small'
  | 'too-many'
  | 'duplicate';

export interface PhotoProblem {
  name: string;
  code: PhotoProblemCode;
  message: string;
}

function startsWith(head: Uint8Array, bytes: readonly number[], at = 0): boolean {
  return bytes.every((b, i) => head[at + i] === b);
}
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

/** The format by magic bytes (a renamed file is judged by what it is, not by its name). */
export function sniffFormat(head: Uint8Array): PhotoFormat | undefined {
  if (startsWith(head, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (startsWith(head, ascii('RIFF')) && startsWith(head, ascii('WEBP'), 8)) return 'webp';
  return undefined;
}

/** Image formats people drop that we do not take, so the message can say which one it was. */
function sniffOtherImage(head: Uint8Array): string | undefined {
  if (startsWith(head, ascii('GIF8'))) return 'GIF';
  if (startsWith(head, ascii('BM'))) return 'BMP';
  if (startsWith(head, ascii('ftyp'), 4)) {
    const brand = String.fromCharCode(...head.subarray(8, 12));
    if (/^(heic|heix|hevc|mif1|msf1)$/.test(brand)) return 'HEIC';
    if (/^avi[fs]$/.test(brand)) return 'AVIF';
  }
  if (startsWith(head, [0x49, 0x49, 0x2a, 0x00]) || startsWith(head, [0x4d, 0x4d, 0x00, 0x2a])) return 'TIFF';
  if (startsWith(head, ascii('<svg')) || startsWith(head, ascii('<?xml'))) return 'SVG';
  return undefined;
}

const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MB`;

/** Checks a file before decoding it: `head` is its first 16 bytes or more. */
export function checkPhotoFile(
  file: { name: string; size: number },
  head: Uint8Array,
): PhotoProblem | undefined {
  const { name } = file;
  if (file.size === 0) return { name, code: 'empty', message: `${name} is empty (0 bytes).` };
  if (file.size > PHOTO_LIMITS.maxBytes) {
    return {
      name,
      code: 'too-large',
      message: `${name} is ${mb(file.size)}; photos may be at most ${mb(PHOTO_LIMITS.maxBytes)}. Export a smaller JPEG.`,
    };
  }
  if (sniffFormat(head)) return undefined;
  const other = sniffOtherImage(head);
  if (other) {
    return {
      name,
      code: 'unsupported-image',
      message: `${name} is a ${other} image; only JPEG, PNG and WebP are supported. Convert it first.`,
    };
  }
  return { name, code: 'not-an-image', message: `${name} is not an image (expected JPEG, PNG or WebP).` };
}

/** The short side a photo needs for a model trained at `resolution` px. */
export function minPhotoSide(resolution: number): number {
  return Math.max(PHOTO_LIMITS.minSide, resolution);
}

export function checkPhotoPixels(
  name: string,
  width: number,
  height: number,
  resolution: number,
): PhotoProblem | undefined {
  const need = minPhotoSide(resolution);
  if (Math.min(width, height) >= need) return undefined;
  return {
    name,
    code: 'too-small',
    message: `${name} is ${width}×${height} px; photos need at least ${need} px on the short side.`,
  };
}

/**
 * How many of `incoming` new photos fit next to `existing`, and what to tell the person about the rest.
 */
export function admitPhotos(existing: number, incoming: number): { accepted: number; message?: string } {
  const room = Math.max(0, PHOTO_LIMITS.maxCount - existing);
  if (incoming <= room) return { accepted: incoming };
  return {
    accepted: room,
    message: `At most ${PHOTO_LIMITS.maxCount} photos per session: ${incoming - room} of ${incoming} were not added.`,
  };
}

/** Advice on the current photo count (shown under the drop zone). */
export function photoCountAdvice(count: number): { level: 'ok' | 'warning' | 'error'; message: string } {
  const { recommendedMin: lo, recommendedMax: hi, maxCount } = PHOTO_LIMITS;
  if (count === 0) return { level: 'error', message: `Add ${lo}–${hi} photos of your subject.` };
  if (count < lo)
    return { level: 'warning', message: `${count} photo${count > 1 ? 's' : ''}: ${lo}–${hi} work best.` };
  if (count > hi)
    return { level: 'warning', message: `${count} photos: more than ${hi} rarely helps (max ${maxCount}).` };
  return { level: 'ok', message: `${count} photos.` };
}

/** The largest centered square: where the crop starts and its side, in source pixels. */
export function centerSquareCrop(width: number, height: number): { sx: number; sy: number; size: number } {
  const size = Math.min(width, height);
  return { sx: Math.floor((width - size) / 2), sy: Math.floor((height - size) / 2), size };
}

/**
 * Center square crop, then box-filter (area) resize to size×size (Node: `npm run train`; the browser resizes
 * with canvas). RGBA bytes, straight alpha. Colours are averaged weighted by alpha, as a canvas does with its
 * premultiplied pixels: the black that fully transparent pixels store does not darken a cut-out's edges.
 */
export function cropResize(img: RgbaImage, size: number): Uint8ClampedArray {
  const { sx, sy, size: side } = centerSquareCrop(img.width, img.height);
  const out = new Uint8ClampedArray(size * size * 4);
  const step = side / size;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const x0 = sx + Math.floor(x * step);
      const y0 = sy + Math.floor(y * step);
      const x1 = Math.max(x0 + 1, sx + Math.floor((x + 1) * step));
      const y1 = Math.max(y0 + 1, sy + Math.floor((y + 1) * step));
      const acc = [0, 0, 0, 0]; // alpha-weighted colour sums, alpha sum
      for (let v = y0; v < y1; v++)
        for (let u = x0; u < x1; u++) {
          const i = (v * img.width + u) * 4;
          const a = img.data[i + 3];
          for (let c = 0; c < 3; c++) acc[c] += img.data[i + c] * a;
          acc[3] += a;
        }
      const o = (y * size + x) * 4;
      for (let c = 0; c < 3; c++) out[o + c] = acc[3] > 0 ? Math.round(acc[c] / acc[3]) : 0;
      out[o + 3] = Math.round(acc[3] / ((x1 - x0) * (y1 - y0)));
    }
  }
  return out;
}

// ---- browser ------------------------------------------------------------------------------------------

export interface DecodedPhoto {
  /** Oriented pixel size (after EXIF rotation). */
  width: number;
  height: number;
  format: PhotoFormat;
  /** Square center-cropped thumbnail (PNG). */
  thumbnail: Blob;
}

export class PhotoError extends Error {
  constructor(readonly problem: PhotoProblem) {
    super(problem.message);
    this.name = 'PhotoError';
  }
}

async function orientedBitmap(blob: Blob, name: string): Promise<ImageBitmap> {
  try {
    return await createImageBitmap(blob, { imageOrientation: 'from-image' });
  } catch {
    throw new PhotoError({
      name,
      code: 'corrupt',
      message: `${name} could not be decoded: the file is damaged or truncated.`,
    });
  }
}

/**
 * The square center crop of an oriented bitmap scaled to `side` px. Halving steps first, because one
 * large downscale in the browser skips pixels (aliasing) where repeated halving averages them.
 */
async function squareCrop(bitmap: ImageBitmap, side: number): Promise<ImageBitmap> {
  const { sx, sy, size } = centerSquareCrop(bitmap.width, bitmap.height);
  let current = await createImageBitmap(bitmap, sx, sy, size, size);
  let s = size;
  while (s / 2 >= side * 2) {
    s = Math.round(s / 2);
    const next = await createImageBitmap(current, { resizeWidth: s, resizeHeight: s, resizeQuality: 'high' });
    current.close();
    current = next;
  }
  const out = await createImageBitmap(current, {
    resizeWidth: side,
    resizeHeight: side,
    resizeQuality: 'high',
  });
  current.close();
  return out;
}

/** The bitmap's RGBA bytes; with a background, drawn over it (opaque). */
function pixels(bitmap: ImageBitmap, background?: string): Uint8ClampedArray {
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
  if (background) {
    ctx.fillStyle = background;
    ctx.fillRect(0, 0, bitmap.width, bitmap.height);
  }
  ctx.drawImage(bitmap, 0, 0);
  return ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
}

/** RGBA pixels as a PNG blob (thumbnails, samples). */
export async function rgbaToPng(rgba: Uint8ClampedArray, width: number, height: number): Promise<Blob> {
  const canvas = new OffscreenCanvas(width, height);
  canvas.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
  return canvas.convertToBlob({ type: 'image/png' });
}

/** Validates and decodes one dropped file; throws PhotoError with a message a person can act on. */
export async function decodePhoto(
  file: Blob & { name: string },
  opts: { resolution: number; thumbnailSize?: number },
): Promise<DecodedPhoto> {
  const head = new Uint8Array(await file.slice(0, 32).arrayBuffer());
  const problem = checkPhotoFile(file, head);
  if (problem) throw new PhotoError(problem);
  const bitmap = await orientedBitmap(file, file.name);
  try {
    const small = checkPhotoPixels(file.name, bitmap.width, bitmap.height, opts.resolution);
    if (small) throw new PhotoError(small);
    const thumb = await squareCrop(bitmap, Math.min(opts.thumbnailSize ?? 160, bitmap.width, bitmap.height));
    const thumbnail = await rgbaToPng(pixels(thumb), thumb.width, thumb.height);
    thumb.close();
    return { width: bitmap.width, height: bitmap.height, format: sniffFormat(head)!, thumbnail };
  } finally {
    bitmap.close();
  }
}

/**
 * The training input: oriented, center-cropped, scaled to the model's square resolution, and opaque: transparent
 * parts (a PNG cut-out) over white, as rgbaToModelInput would composite them, so the crop preview shows them so.
 */
export async function toTrainingImage(blob: Blob, name: string, resolution: number): Promise<TrainingImage> {
  const bitmap = await orientedBitmap(blob, name);
  try {
    const crop = await squareCrop(bitmap, resolution);
    const rgba = pixels(crop, '#fff');
    crop.close();
    return { name, width: resolution, height: resolution, rgba };
  } finally {
    bitmap.close();
  }
}
