// Colours and axis styling shared by the charts: one hue per UNet block (down blue, mid amber, up green),
// layers within a block spread over its lightness range so neighbours stay distinguishable.
import type uPlot from 'uplot';
import type { LayerBlock } from '../../train/sessionStore';

const BLOCK_HUE: Record<LayerBlock, number> = { down: 218, mid: 38, up: 150 };
export const BLOCK_LABEL: Record<LayerBlock, string> = {
  down: 'down blocks',
  mid: 'mid block',
  up: 'up blocks',
};

export function blockColor(block: LayerBlock, indexInBlock = 0, countInBlock = 1): string {
  const t = countInBlock > 1 ? indexInBlock / (countInBlock - 1) : 0.5;
  return `hsl(${BLOCK_HUE[block]} 80% ${Math.round(48 + 24 * t)}%)`;
}

/** A colour for each layer, in order. */
export function layerColors(layers: readonly { block: LayerBlock }[]): string[] {
  const counts = { down: 0, mid: 0, up: 0 };
  for (const l of layers) counts[l.block]++;
  const seen = { down: 0, mid: 0, up: 0 };
  return layers.map((l) => blockColor(l.block, seen[l.block]++, counts[l.block]));
}

/** A loss axis's labels: two decimals, or an exponent below 0.01. */
export const lossTickFormat = (v: number) =>
  Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(2) : v.toExponential(0);

const AXIS = '#9aa3b2';
const GRID = '#262b36';

export function axes(yLabel: string, yFormat?: (v: number) => string): uPlot.Axis[] {
  return [
    { stroke: AXIS, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID }, label: 'step', labelSize: 18 },
    {
      stroke: AXIS,
      grid: { stroke: GRID, width: 1 },
      ticks: { stroke: GRID },
      label: yLabel,
      labelSize: 18,
      size: 48,
      values: yFormat ? (_u, vals) => vals.map(yFormat) : undefined,
    },
  ];
}
