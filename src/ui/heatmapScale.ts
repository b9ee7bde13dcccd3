// Colour scale of the rank heatmap: contributions span orders of magnitude, so they are mapped on a log
// scale (four decades below the largest value seen) onto a perceptual colormap; zero is the background.

/** Viridis at nine stops: perceptually uniform, readable on the dark theme, colour-blind safe. */
const VIRIDIS: [number, number, number][] = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];
export const EMPTY_RGB: [number, number, number] = [24, 27, 34];
export const HEATMAP_DECADES = 4;

export function colormap(t: number): [number, number, number] {
  if (!Number.isFinite(t)) return EMPTY_RGB;
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i];
  const b = VIRIDIS[i + 1];
  return [0, 1, 2].map((c) => Math.round(a[c] + (b[c] - a[c]) * f)) as [number, number, number];
}

/** Position of a contribution on the scale in [0, 1]; NaN for values at or below zero (nothing there). */
export function scaleContribution(v: number, max: number, decades = HEATMAP_DECADES): number {
  if (!(v > 0) || !(max > 0)) return Number.NaN;
  return Math.min(1, Math.max(0, 1 + Math.log10(v / max) / decades));
}

/**
 * RGBA pixels, one per (layer, position): rows are layers, `cols` positions. Positions past a row's
 * length are background; positions at or past the layer's rank D (masked, not contributing) are dimmed.
 */
export function heatmapPixels(
  rows: ArrayLike<number>[],
  cols: number,
  max: number,
  ranks?: readonly number[],
): Uint8ClampedArray<ArrayBuffer> {
  const out = new Uint8ClampedArray(rows.length * cols * 4);
  rows.forEach((row, y) => {
    for (let x = 0; x < cols; x++) {
      const rgb = x < row.length ? colormap(scaleContribution(row[x], max)) : EMPTY_RGB;
      const dim = ranks && x >= ranks[y] && x < row.length ? 0.35 : 1;
      const o = (y * cols + x) * 4;
      out[o] = rgb[0] * dim;
      out[o + 1] = rgb[1] * dim;
      out[o + 2] = rgb[2] * dim;
      out[o + 3] = 255;
    }
  });
  return out;
}

/** Relative luminance (sRGB, 0–1), for tests and for choosing legible text over a cell. */
export function luminance([r, g, b]: [number, number, number]): number {
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}
