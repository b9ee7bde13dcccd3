import { describe, expect, it } from 'vitest';
import { imageGrid, upscale } from './imageGrid';

const px = (r: number, g: number, b: number) => ({
  width: 1,
  height: 1,
  data: new Uint8ClampedArray([r, g, b, 255]),
});

describe('imageGrid', () => {
  it('upscales by repeating pixels', () => {
    const img = { width: 2, height: 1, data: new Uint8ClampedArray([1, 2, 3, 4, 5, 6, 7, 8]) };
    const u = upscale(img, 2);
    expect([u.width, u.height]).toEqual([4, 2]);
    expect([...u.data.subarray(0, 16)]).toEqual([1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8, 5, 6, 7, 8]);
    expect([...u.data.subarray(16)]).toEqual([...u.data.subarray(0, 16)]);
  });

  it('lays images out row-major with white gutters', () => {
    const g = imageGrid([px(255, 0, 0), px(0, 255, 0), px(0, 0, 255)], 2, 1);
    expect([g.width, g.height]).toEqual([6, 6]);
    const at = (x: number, y: number) => [...g.data.subarray((y * 6 + x) * 4, (y * 6 + x) * 4 + 3)];
    expect(at(0, 0)).toEqual([255, 0, 0]);
    expect(at(3, 0)).toEqual([0, 255, 0]);
    expect(at(0, 3)).toEqual([0, 0, 255]);
    expect(at(1, 0)).toEqual([255, 255, 255]);
    expect(at(3, 3)).toEqual([255, 255, 255]);
    expect(() => imageGrid([px(1, 1, 1), upscale(px(1, 1, 1), 2)], 2, 1)).toThrow(/differ/);
  });
});
