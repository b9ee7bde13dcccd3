import { describe, expect, it } from 'vitest';
import type { RgbaImage } from '../io/png';
import { compositeSubject } from './subject';

/** A 16×16 subject: an opaque red disc on a transparent background. */
function disc(): RgbaImage {
  const data = new Uint8ClampedArray(16 * 16 * 4);
  for (let y = 0; y < 16; y++)
    for (let x = 0; x < 16; x++)
      if ((x - 7.5) ** 2 + (y - 7.5) ** 2 < 36) data.set([255, 0, 0, 255], (y * 16 + x) * 4);
  return { width: 16, height: 16, data };
}

describe('compositeSubject', () => {
  it('puts the subject on a different opaque background in each photo, reproducibly', () => {
    const photos = compositeSubject(disc(), { size: 32, count: 4, seed: 7 });
    expect(photos).toHaveLength(4);
    const corners = new Set<string>();
    for (const p of photos) {
      expect(p.width).toBe(32);
      for (let i = 3; i < p.data.length; i += 4) expect(p.data[i]).toBe(255);
      // The centre is inside the disc whatever the jitter (scale ≥ 0.7 keeps it covered).
      const c = (16 * 32 + 16) * 4;
      expect([...p.data.slice(c, c + 3)]).toEqual([255, 0, 0]);
      corners.add([...p.data.slice(0, 3)].join(','));
    }
    expect(corners.size).toBe(4);
    expect(compositeSubject(disc(), { size: 32, count: 4, seed: 7 })).toEqual(photos);
    expect(compositeSubject(disc(), { size: 32, count: 4, seed: 8 })).not.toEqual(photos);
  });

  it('on white: the same placements with every background pixel white', () => {
    const varied = compositeSubject(disc(), { size: 32, count: 3, seed: 7 });
    const white = compositeSubject(disc(), { size: 32, count: 3, seed: 7, background: 'white' });
    for (const [n, p] of white.entries()) {
      let subject = 0;
      for (let i = 0; i < p.data.length; i += 4) {
        const px = [...p.data.slice(i, i + 4)];
        const onSubject = varied[n].data[i] === 255 && varied[n].data[i + 1] === 0;
        if (onSubject) {
          subject++;
          expect(px).toEqual([255, 0, 0, 255]); // the disc where it was on colours
        } else if (p.data[i + 1] === 255) expect(px).toEqual([255, 255, 255, 255]);
        else expect(px[0]).toBe(255); // its anti-aliased edge: red over white
      }
      expect(subject).toBeGreaterThan(100);
    }
  });

  it('blends partly transparent edges with the background instead of darkening them', () => {
    // 2×2 so that the sampled pixel's bilinear footprint lies inside the subject.
    const half: RgbaImage = {
      width: 2,
      height: 2,
      data: new Uint8ClampedArray(Array(4).fill([0, 0, 255, 128]).flat()),
    };
    const [p] = compositeSubject(half, { size: 4, count: 1, seed: 1, scale: [1, 1] });
    const bg = compositeSubject(
      { width: 2, height: 2, data: new Uint8ClampedArray(16) },
      {
        size: 4,
        count: 1,
        seed: 1,
        scale: [1, 1],
      },
    )[0];
    const o = (1 * 4 + 1) * 4;
    const a = 128 / 255;
    for (let c = 0; c < 2; c++)
      expect(Math.abs(p.data[o + c] - bg.data[o + c] * (1 - a))).toBeLessThanOrEqual(1);
    expect(Math.abs(p.data[o + 2] - (255 * a + bg.data[o + 2] * (1 - a)))).toBeLessThanOrEqual(1);
  });
});
