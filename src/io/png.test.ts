// PNG round trip, filters, and readable errors for broken files.
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodePng, encodePng, PngError } from './png';
import { buildPng } from './png.fixture';

function image(w: number, h: number) {
  const data = new Uint8ClampedArray(w * h * 4);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + (i >> 3)) & 0xff;
  return { width: w, height: h, data };
}

describe('png', () => {
  it('round-trips RGBA', async () => {
    const img = image(13, 7);
    const back = await decodePng(await encodePng(img));
    expect(back.width).toBe(13);
    expect(back.height).toBe(7);
    expect(Array.from(back.data)).toEqual(Array.from(img.data));
  });

  it('decodes every filter type (built with node zlib, RGB)', async () => {
    const w = 5;
    const h = 5;
    const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 29) & 0xff);
    // Encode each row with filter = row index (0..4), computing filtered bytes by hand.
    const raw: number[] = [];
    for (let y = 0; y < h; y++) {
      raw.push(y);
      for (let x = 0; x < w * 3; x++) {
        const v = rgb[y * w * 3 + x];
        const a = x >= 3 ? rgb[y * w * 3 + x - 3] : 0;
        const b = y > 0 ? rgb[(y - 1) * w * 3 + x] : 0;
        const c = x >= 3 && y > 0 ? rgb[(y - 1) * w * 3 + x - 3] : 0;
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][y];
        raw.push((v - pred) & 0xff);
      }
    }
    const file = buildPng(w, h, 2, deflateSync(Uint8Array.from(raw)));
    const img = await decodePng(file);
    for (let i = 0; i < w * h; i++) {
      expect([img.data[i * 4], img.data[i * 4 + 1], img.data[i * 4 + 2], img.data[i * 4 + 3]]).toEqual([
        rgb[i * 3],
        rgb[i * 3 + 1],
        rgb[i * 3 + 2],
        255,
      ]);
    }
  });

  it('names the problem in a broken file', async () => {
    await expect(decodePng(new Uint8Array([1, 2, 3]))).rejects.toThrow(/not a PNG/);
    const good = await encodePng(image(4, 4));
    await expect(decodePng(good.slice(0, good.length - 20))).rejects.toBeInstanceOf(PngError);
    const corrupt = good.slice();
    corrupt[40] ^= 0xff;
    await expect(decodePng(corrupt)).rejects.toThrow(/CRC|corrupt/);
  });
});
