import { describe, expect, it } from 'vitest';
import { rgbaToModelInput } from './trainer';

const rounded = (xs: ArrayLike<number>) => Array.from(xs, (v) => Number(v.toFixed(5)));

describe('rgbaToModelInput', () => {
  it('maps opaque bytes to [-1, 1] planes (channel-major)', () => {
    const rgba = [0, 255, 51, 255, 255, 0, 204, 255]; // two opaque pixels
    expect(rounded(rgbaToModelInput(rgba, 2, 1))).toEqual(
      rounded([0, 255, 255, 0, 51, 204].map((v) => v / 127.5 - 1)),
    );
  });

  it('composites transparent pixels over white, not the black they store', () => {
    // fully transparent black, half-transparent pure red, opaque black
    const rgba = [0, 0, 0, 0, 255, 0, 0, 128, 0, 0, 0, 255];
    const x = rgbaToModelInput(rgba, 3, 1);
    const pixel = (i: number) => [x[i], x[3 + i], x[6 + i]];
    expect(pixel(0)).toEqual([1, 1, 1]);
    const gb = (255 * (1 - 128 / 255)) / 127.5 - 1; // green and blue of red over white at alpha 128/255
    expect(rounded(pixel(1))).toEqual(rounded([1, gb, gb]));
    expect(pixel(2)).toEqual([-1, -1, -1]);
  });
});
