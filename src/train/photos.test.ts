// Photo rules: formats by magic bytes, size and pixel limits, count limits, the center crop.
import { describe, expect, it } from 'vitest';
import {
  admitPhotos,
  centerSquareCrop,
  checkPhotoFile,
  checkPhotoPixels,
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
});
