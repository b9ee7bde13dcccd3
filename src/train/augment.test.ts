import { describe, expect, it } from 'vitest';
import { Rng } from '../models/rng';
import { augmentImage, checkAugment, NO_AUGMENT } from './augment';

/** [C, H, W] with value c·100 + y·10 + x. */
function ramp(C: number, H: number, W: number): Float32Array {
  const out = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++)
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[(c * H + y) * W + x] = c * 100 + y * 10 + x;
  return out;
}

describe('augmentImage', () => {
  const shape = [3, 6, 6] as const;
  const img = ramp(...shape);

  it('off: returns the image itself and draws nothing', () => {
    const rng = new Rng(1);
    const before = rng.state();
    expect(augmentImage(img, shape, rng, NO_AUGMENT)).toBe(img);
    expect(rng.state()).toEqual(before);
  });

  it('flip mirrors every row of every channel, about half the time', () => {
    const rng = new Rng(2);
    let flipped = 0;
    for (let i = 0; i < 200; i++) {
      const out = augmentImage(img, shape, rng, { flip: true, minCrop: 1 });
      if (out[0] === img[5]) {
        flipped++;
        for (let c = 0; c < 3; c++)
          for (let y = 0; y < 6; y++)
            for (let x = 0; x < 6; x++) expect(out[(c * 6 + y) * 6 + x]).toBe(img[(c * 6 + y) * 6 + 5 - x]);
      } else expect(out).toEqual(img);
    }
    expect(flipped).toBeGreaterThan(70);
    expect(flipped).toBeLessThan(130);
  });

  it('crop zooms into a window: a linear ramp stays linear with slope = the crop fraction', () => {
    const rng = new Rng(3);
    const at = (out: Float32Array, c: number, y: number, x: number) => out[(c * 6 + y) * 6 + x];
    for (let i = 0; i < 50; i++) {
      const out = augmentImage(img, shape, rng, { flip: false, minCrop: 0.5 });
      // Away from the border (where samples clamp to the edge pixel) x steps by frac and y by 10·frac.
      const dx = at(out, 0, 1, 2) - at(out, 0, 1, 1);
      expect(dx).toBeGreaterThanOrEqual(0.5 - 1e-5);
      expect(dx).toBeLessThanOrEqual(1 + 1e-5);
      for (let c = 0; c < 3; c++)
        for (let y = 1; y < 5; y++)
          for (let x = 1; x < 5; x++)
            expect(at(out, c, y, x)).toBeCloseTo(
              at(out, 0, 1, 1) + c * 100 + 10 * dx * (y - 1) + dx * (x - 1),
              3,
            );
      // The window stays inside the image: every value is one of the image's range.
      for (let c = 0; c < 3; c++)
        for (let j = 0; j < 36; j++) {
          expect(out[c * 36 + j] - c * 100).toBeGreaterThanOrEqual(-1e-4);
          expect(out[c * 36 + j] - c * 100).toBeLessThanOrEqual(55 + 1e-4);
        }
    }
  });

  it('is reproducible from the RNG state and rejects a crop fraction outside (0, 1]', () => {
    const a = augmentImage(img, shape, new Rng(9), { flip: true, minCrop: 0.7 });
    const b = augmentImage(img, shape, new Rng(9), { flip: true, minCrop: 0.7 });
    expect(a).toEqual(b);
    expect(() => checkAugment({ flip: false, minCrop: 0 })).toThrow(/minCrop/);
    expect(() => checkAugment({ flip: false, minCrop: 1.5 })).toThrow(/minCrop/);
    expect(() => checkAugment({ flip: true, minCrop: 0.8 })).not.toThrow();
  });
});
