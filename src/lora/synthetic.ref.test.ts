// The float64 LoRA² reference on the synthetic rank task: it recovers the ranks at the task's settings, and the
// weight prior at N = 16 (what the GPU test first used) pins every layer near r₀ (see SYNTHETIC_SETTINGS).
import { describe, expect, it } from 'vitest';
import { lora2Settings } from './adapter';
import { SYNTHETIC_SETTINGS, SYNTHETIC_TRUE_RANKS } from './synthetic';
import { trainSyntheticRef } from './synthetic.ref';

describe('LoRA² float64 reference on the synthetic task', () => {
  it('recovers ranks 1, 4, 16 in order, each within 2×, and fits the targets', () => {
    const { layers } = trainSyntheticRef(lora2Settings(SYNTHETIC_SETTINGS), { steps: 250 });
    const ranks = layers.map((l) => l.rank);
    console.log(
      `[ref] true ${SYNTHETIC_TRUE_RANKS} → ${ranks}; fit error ${layers.map((l) => l.fitError.toFixed(3))}`,
    );
    expect(ranks[0]).toBeLessThan(ranks[1]);
    expect(ranks[1]).toBeLessThan(ranks[2]);
    layers.forEach((l) => {
      expect(l.rank).toBeLessThanOrEqual(2 * l.trueRank);
      expect(l.rank).toBeGreaterThanOrEqual(l.trueRank / 2);
    });
    expect(layers[1].fitError).toBeLessThan(0.1);
    expect(layers[2].fitError).toBeLessThan(0.5);
  });

  it('with N = 16 the priors outweigh the data and every layer stays near r₀', () => {
    const { layers } = trainSyntheticRef(lora2Settings({ ...SYNTHETIC_SETTINGS, datasetSize: 16 }), {
      steps: 250,
    });
    console.log(`[ref N=16] ranks ${layers.map((l) => l.rank)}`);
    for (const l of layers) expect(l.rank).toBeLessThanOrEqual(3);
  });
});
