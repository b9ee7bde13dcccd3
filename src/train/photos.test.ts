// Photo rules: formats by magic bytes, size and pixel limits, count limits, the center crop.
import { describe, expect, it } from 'vitest';
import {
  admitPhotos,
  centerSquareCrop,
  checkPhotoFile,
  checkPhotoPixels,
  cropResize,
  photoCountAdvice,
  PHOTO_LIMITS,
  sniffFormat,
} from './photos';

const bytes = (...parts: (number[] | string)[]) =>
  new Uint8Array(parts.flatMap((p) => (typeof p === 'string' ? [...p].map((c) => c.charCodeAt(0)) : p)));

const PNG = bytes([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
const JPEG = bytes([0xff, 0xd8, 0xff, 0xe0, 0, 16], 'JFIF');
const WEBP = bytes('RIFF', [1, 2, 3, 4], 'WEBPVP8 ');

describe('photo rules', () => {
  it('recognizes JPEG, PNG and WebP by their bytes', () => {
    expect(sniffFormat(PNG)).toBe('png');
    expect(sniffFormat(JPEG)).toBe('jpeg');
    expect(sniffFormat(WEBP)).toBe('webp');
    expect(sniffFormat(bytes('RIFF', [1, 2, 3, 4], 'WAVEfmt '))).toBeUndefined();
    expect(sniffFormat(bytes('hello world'))).toBeUndefined();
  });

  it('accepts a good file whatever its name says', () => {
    expect(checkPhotoFile({ name: 'x.txt', size: 1000 }, JPEG)).toBeUndefined();
  });

  it('names other image formats and rejects non-images', () => {
    const gif = checkPhotoFile({ name: 'a.gif', size: 10 }, bytes('GIF89a'));
    expect(gif).toMatchObject({ code: 'unsupported-image', message: expect.stringMatching(/GIF/) });
    const heic = checkPhotoFile({ name: 'a.heic', size: 10 }, bytes([0, 0, 0, 24], 'ftypheic'));
    expect(heic?.message).toMatch(/HEIC/);
    const txt = checkPhotoFile({ name: 'notes.png', size: 10 }, bytes('just text'));
    expect(txt).toMatchObject({
      code: 'not-an-image',
      message: expect.stringMatching(/notes\.png is not an image/),
    });
  });

  it('rejects empty and oversized files with the limit in the message', () => {
    expect(checkPhotoFile({ name: 'e.png', size: 0 }, PNG)?.code).toBe('empty');
    const big = checkPhotoFile({ name: 'big.jpg', size: PHOTO_LIMITS.maxBytes + 1 }, JPEG);
    expect(big).toMatchObject({ code: 'too-large', message: expect.stringMatching(/25\.0 MB/) });
    expect(checkPhotoFile({ name: 'ok.jpg', size: PHOTO_LIMITS.maxBytes }, JPEG)).toBeUndefined();
  });

  it('rejects photos smaller than the model needs', () => {
    expect(checkPhotoPixels('s.png', 40, 300, 32)).toMatchObject({
      code: 'too-small',
      message: expect.stringMatching(/40×300.*64 px/),
    });
    expect(checkPhotoPixels('s.png', 64, 300, 32)).toBeUndefined();
    expect(checkPhotoPixels('s.png', 400, 300, 512)?.message).toMatch(/512 px/);
  });

  it('admits photos up to the maximum count and says how many were left out', () => {
    expect(admitPhotos(0, 10)).toEqual({ accepted: 10 });
    expect(admitPhotos(45, 10)).toEqual({
      accepted: 5,
      message: expect.stringMatching(/5 of 10 were not added/),
    });
    expect(admitPhotos(50, 1).accepted).toBe(0);
  });

  it('advises 3–20 photos', () => {
    expect(photoCountAdvice(0).level).toBe('error');
    expect(photoCountAdvice(2).level).toBe('warning');
    expect(photoCountAdvice(3).level).toBe('ok');
    expect(photoCountAdvice(20).level).toBe('ok');
    expect(photoCountAdvice(21).level).toBe('warning');
  });

  it('crops the largest centered square', () => {
    expect(centerSquareCrop(400, 300)).toEqual({ sx: 50, sy: 0, size: 300 });
    expect(centerSquareCrop(300, 401)).toEqual({ sx: 0, sy: 50, size: 300 });
    expect(centerSquareCrop(64, 64)).toEqual({ sx: 0, sy: 0, size: 64 });
  });

  it('crops and box-filters to the model size, averaging colour by alpha (cropResize, the CLI)', () => {
    // 6×4: the centre 4×4 square is two 2×2 blocks per output pixel. Left half: opaque red beside a
    // fully transparent black pixel in each block; right half: opaque (50, 100, 150).
    const data = new Uint8ClampedArray(6 * 4 * 4);
    for (let y = 0; y < 4; y++)
      for (let x = 0; x < 6; x++) {
        const px =
          x === 0 || x === 5
            ? [9, 9, 9, 255]
            : x < 3
              ? (x + y) % 2
                ? [0, 0, 0, 0]
                : [255, 0, 0, 255]
              : [50, 100, 150, 255];
        data.set(px, (y * 6 + x) * 4);
      }
    const out = cropResize({ width: 6, height: 4, data }, 2);
    const pixel = (i: number) => Array.from(out.subarray(i * 4, i * 4 + 4));
    // red keeps its colour at half coverage (a plain mean would give (128, 0, 0): a dark fringe over white)
    expect(pixel(0)).toEqual([255, 0, 0, 128]);
    expect(pixel(2)).toEqual([255, 0, 0, 128]);
    expect(pixel(1)).toEqual([50, 100, 150, 255]);
    expect(pixel(3)).toEqual([50, 100, 150, 255]);
    // all transparent stays transparent
    expect(Array.from(cropResize({ width: 2, height: 2, data: new Uint8ClampedArray(16) }, 1))).toEqual([
      0, 0, 0, 0,
    ]);
  });
});
