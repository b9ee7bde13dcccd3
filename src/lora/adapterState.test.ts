// The CPU side of adapter states: folding s·f (or α/r) into a plain LoRA, and the inverse used by imports.
import { describe, expect, it } from 'vitest';
import { Rng } from '../models/rng';
import { adapterStateFromLayer, lora2Settings, plainLayerFromState, positionScales } from './adapter';
import { effectiveRank, importance, softplus } from './importance';

function layer(rank: number, inFeatures: number, outFeatures: number, seed: number) {
  const rng = new Rng(seed);
  return {
    path: 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q',
    rank,
    inFeatures,
    outFeatures,
    down: rng.normals(rank * inFeatures),
    up: rng.normals(outFeatures * rank),
  };
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, rtol = 1e-6): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++)
    expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(rtol * (1 + Math.abs(b[i])));
}

describe('adapter states ↔ plain LoRA layers', () => {
  it('position scales are s·f(i) for LoRA² and α/r for the fixed-rank baseline', () => {
    const s = lora2Settings({ scale: 2 });
    const f = importance(softplus(0.3), 5);
    expectClose(
      positionScales(s, 0.3, 5),
      Array.from(f, (v) => 2 * v),
      1e-12,
    );
    expect([...positionScales(lora2Settings({ fixedRank: 4, alpha: 2 }), 0.3, 4)]).toEqual([
      0.5, 0.5, 0.5, 0.5,
    ]);
  });

  it('folds the scales into up at rank D, ignoring positions beyond D', () => {
    const s = lora2Settings();
    const rho = 0.7;
    const state = { inFeatures: 3, outFeatures: 2, rank: 2, capacity: 4, rho };
    const A = Float32Array.from({ length: 4 * 3 }, (_, i) => i + 1);
    const Bt = Float32Array.from({ length: 4 * 2 }, (_, i) => 10 - i);
    const out = plainLayerFromState(s, {
      ...adapterStateFromLayer(s, layer(1, 3, 2, 1), 0),
      ...state,
      A,
      Bt,
    });
    const f = positionScales(s, rho, 2);
    expect(out.rank).toBe(2);
    expect([...out.down]).toEqual([1, 2, 3, 4, 5, 6]);
    // up[o, i] = Bᵀ[i, o]·f(i)
    expectClose(out.up, [10 * f[0], 8 * f[1], 9 * f[0], 7 * f[1]]);
  });

  for (const [name, settings] of [
    ['LoRA²', lora2Settings({ scale: 4 })],
    ['fixed rank', lora2Settings({ fixedRank: 16, alpha: 8 })],
  ] as const) {
    it(`${name}: an imported layer exports the same ΔW and keeps its rank`, () => {
      for (const rank of [1, 3, 17]) {
        const l = layer(rank, 24, 40, rank);
        const state = adapterStateFromLayer(settings, l, 5);
        expect(state).toMatchObject({ rank, capacity: rank, step: 0, rhoM: 0, rhoV: 0 });
        expect(state.mA.every((v) => v === 0) && state.vB.every((v) => v === 0)).toBe(true);
        if (settings.fixedRank === undefined)
          expect(effectiveRank(softplus(state.rho), settings.quantile, 64)).toBe(rank);
        const back = plainLayerFromState(settings, state);
        expect(back.rank).toBe(rank);
        expectClose(back.down, l.down, 0);
        expectClose(back.up, l.up);
      }
    });
  }
});
