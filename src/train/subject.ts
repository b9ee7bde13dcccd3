// Personalization subjects for tests, the CLI and benchmarks: an emoji design (RGBA with alpha) composited on
// varied backgrounds — solid colours and two-colour gradients — at a jittered scale and position, so the
// photos share the subject and nothing else; or on white, as the emoji corpus is (`background: 'white'`).
// Seeded: the same seed gives the same photos and placements whichever the background.
import type { RgbaImage } from '../io/png';
import { Rng } from '../models/rng';

export interface SubjectOptions {
  /** Output side in pixels (square). */
  size: number;
  count: number;
  seed: number;
  /** Subject side as a fraction of the output side, drawn uniformly from this range. */
  scale?: [number, number];
  /** 'varied' (default): colours and gradients; 'white': the same placements on white. */
  background?: 'varied' | 'white';
}

type Rgb = [number, number, number];

/** A saturated-but-soft colour away from pure white (the emoji corpus is mostly on white). */
function backgroundColour(rng: Rng): Rgb {
  const h = rng.uniform() * 6;
  const s = 0.35 + 0.45 * rng.uniform();
  const v = 0.45 + 0.45 * rng.uniform();
  const f = h - Math.floor(h);
  const [p, q, t] = [v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))];
  const rgb = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][Math.floor(h) % 6];
  return rgb.map((c) => Math.round(c * 255)) as Rgb;
}

/** Bilinear sample of `img` at (u, v) in source pixel coordinates; outside the image is transparent. */
function sample(img: RgbaImage, u: number, v: number): [number, number, number, number] {
  const x0 = Math.floor(u - 0.5);
  const y0 = Math.floor(v - 0.5);
  const fx = u - 0.5 - x0;
  const fy = v - 0.5 - y0;
  const acc = [0, 0, 0, 0];
  for (const [dx, dy, w] of [
    [0, 0, (1 - fx) * (1 - fy)],
    [1, 0, fx * (1 - fy)],
    [0, 1, (1 - fx) * fy],
    [1, 1, fx * fy],
  ]) {
    const x = x0 + dx;
    const y = y0 + dy;
    if (x < 0 || y < 0 || x >= img.width || y >= img.height || w === 0) continue;
    const o = (y * img.width + x) * 4;
    const a = (img.data[o + 3] / 255) * w;
    // Premultiplied, so transparent pixels' colours do not bleed into the edge.
    for (let c = 0; c < 3; c++) acc[c] += img.data[o + c] * a;
    acc[3] += a;
  }
  return [acc[0], acc[1], acc[2], acc[3]];
}

/** `count` photos of `subject` at `size`×`size` on different backgrounds (opaque RGBA). */
export function compositeSubject(subject: RgbaImage, opts: SubjectOptions): RgbaImage[] {
  const rng = new Rng(opts.seed);
  const [smin, smax] = opts.scale ?? [0.7, 0.95];
  const out: RgbaImage[] = [];
  for (let n = 0; n < opts.count; n++) {
    // Drawn either way, so a seed places the subject the same on white as on colours.
    const drawnA = backgroundColour(rng);
    const drawnB = n % 2 === 1 ? backgroundColour(rng) : drawnA;
    const white: Rgb = [255, 255, 255];
    const [a, b] = opts.background === 'white' ? [white, white] : [drawnA, drawnB];
    const angle = rng.uniform() * 2 * Math.PI;
    const side = opts.size * (smin + (smax - smin) * rng.uniform());
    const ox = (opts.size - side) * rng.uniform();
    const oy = (opts.size - side) * rng.uniform();
    const data = new Uint8ClampedArray(opts.size * opts.size * 4);
    const [cx, cy] = [Math.cos(angle), Math.sin(angle)];
    for (let y = 0; y < opts.size; y++)
      for (let x = 0; x < opts.size; x++) {
        // Gradient position along the angle, 0..1 across the image.
        const t = Math.min(1, Math.max(0, 0.5 + ((x / opts.size - 0.5) * cx + (y / opts.size - 0.5) * cy)));
        const u = ((x + 0.5 - ox) / side) * subject.width;
        const v = ((y + 0.5 - oy) / side) * subject.height;
        const [r, g, bl, alpha] = sample(subject, u, v);
        const o = (y * opts.size + x) * 4;
        const fg = [r, g, bl];
        for (let c = 0; c < 3; c++) data[o + c] = fg[c] + (a[c] * (1 - t) + b[c] * t) * (1 - alpha);
        data[o + 3] = 255;
      }
    out.push({ width: opts.size, height: opts.size, data });
  }
  return out;
}
