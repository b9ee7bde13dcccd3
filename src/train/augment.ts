// Training-time augmentation of instance and class images in model space ([C, H, W]): a random square crop
// scaled back to H×W (bilinear) and a horizontal flip. Off by default, because a subject that is not
// mirror-symmetric (a logo, text, an emoji with one red ear) learns its mirror image too.
import type { Rng } from '../models/rng';

export interface AugmentSettings {
  /** Flip left–right with probability ½. */
  flip: boolean;
  /** Smallest crop side as a fraction of the image side (1 = no crop); the side is uniform in [minCrop, 1]. */
  minCrop: number;
}

export const NO_AUGMENT: Readonly<AugmentSettings> = Object.freeze({ flip: false, minCrop: 1 });

/** Whether `a` changes any image (and so draws from the RNG). */
export function augments(a: AugmentSettings): boolean {
  return a.flip || a.minCrop < 1;
}

/** Throws on settings that cannot be applied (minCrop outside (0, 1]). */
export function checkAugment(a: AugmentSettings): void {
  if (!(a.minCrop > 0 && a.minCrop <= 1))
    throw new Error(`augment.minCrop ${a.minCrop}: expected a fraction of the image side in (0, 1]`);
}

/**
 * One augmented copy of `img` ([C, H, W]). Draws from `rng` only for what is on (crop: 3 draws, flip: 1),
 * so runs without augmentation keep their noise and timestep draws.
 */
export function augmentImage(
  img: Float32Array,
  shape: readonly [number, number, number],
  rng: Rng,
  a: AugmentSettings,
): Float32Array {
  if (!augments(a)) return img;
  const [C, H, W] = shape;
  // The crop window: a fraction of each side, placed uniformly inside the image.
  let frac = 1;
  let x0 = 0;
  let y0 = 0;
  if (a.minCrop < 1) {
    frac = a.minCrop + (1 - a.minCrop) * rng.uniform();
    x0 = W * (1 - frac) * rng.uniform();
    y0 = H * (1 - frac) * rng.uniform();
  }
  const flip = a.flip && rng.uniform() < 0.5;
  const out = new Float32Array(C * H * W);
  for (let y = 0; y < H; y++) {
    // Pixel centres of the output map into the crop window; clamp at its border.
    const sy = Math.min(H - 1, Math.max(0, y0 + (y + 0.5) * frac - 0.5));
    const ya = Math.floor(sy);
    const yb = Math.min(H - 1, ya + 1);
    const fy = sy - ya;
    for (let x = 0; x < W; x++) {
      const xo = flip ? W - 1 - x : x;
      const sx = Math.min(W - 1, Math.max(0, x0 + (xo + 0.5) * frac - 0.5));
      const xa = Math.floor(sx);
      const xb = Math.min(W - 1, xa + 1);
      const fx = sx - xa;
      for (let c = 0; c < C; c++) {
        const p = c * H * W;
        const top = img[p + ya * W + xa] * (1 - fx) + img[p + ya * W + xb] * fx;
        const bottom = img[p + yb * W + xa] * (1 - fx) + img[p + yb * W + xb] * fx;
        out[p + y * W + x] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return out;
}
