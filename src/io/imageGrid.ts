// Contact sheets for the CLIs: nearest-neighbour upscaling (32×32 samples are too small to see) and grids
// of equally sized images with white gutters.
import type { RgbaImage } from './png';

/** Nearest-neighbour upscale by an integer factor. */
export function upscale(img: RgbaImage, s: number): RgbaImage {
  const w = img.width * s;
  const h = img.height * s;
  const data = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const src = (Math.floor(y / s) * img.width + Math.floor(x / s)) * 4;
      data.set(img.data.subarray(src, src + 4), (y * w + x) * 4);
    }
  return { width: w, height: h, data };
}

/** Rows of `cols` images (row-major order), each upscaled by `s`, with 2 px white gutters. */
export function imageGrid(imgs: RgbaImage[], cols: number, s: number): RgbaImage {
  if (imgs.length === 0) throw new Error('imageGrid: no images');
  const tiles = imgs.map((i) => upscale(i, s));
  const tw = tiles[0].width + 2;
  const th = tiles[0].height + 2;
  if (tiles.some((t) => t.width !== tiles[0].width || t.height !== tiles[0].height))
    throw new Error('imageGrid: images differ in size');
  const rows = Math.ceil(tiles.length / cols);
  const w = cols * tw;
  const h = rows * th;
  const data = new Uint8ClampedArray(w * h * 4).fill(255);
  tiles.forEach((t, k) => {
    const ox = (k % cols) * tw;
    const oy = Math.floor(k / cols) * th;
    for (let y = 0; y < t.height; y++)
      data.set(t.data.subarray(y * t.width * 4, (y + 1) * t.width * 4), ((oy + y) * w + ox) * 4);
  });
  return { width: w, height: h, data };
}
