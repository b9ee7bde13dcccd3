// LoRA² rank behaviour on the synthetic task (synthetic.ts, DESIGN.md §5 prototype): three independent 64×64
// linear maps whose targets differ from W0 by rank 1, 4 and 16. Multi-step trajectories (λ, D, loss, capacity
// growth) must follow the float64 reference; the learned ranks must come out in order, each within 2× of the
// truth; the rank prior must control growth (none → far beyond r₀; stronger → smaller, monotone).
// The task's N = 256 is what makes the ranks recoverable at all: see SYNTHETIC_SETTINGS.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { testGpu } from '../gpu/testing';
import { Engine } from '../tensor/engine';
import { lora2Settings, type Lora2Settings } from './adapter';
import { SYNTHETIC_SETTINGS, SYNTHETIC_TRUE_RANKS, trainSynthetic } from './synthetic';
import { trainSyntheticRef } from './synthetic.ref';

const settings = (over: Partial<Lora2Settings> = {}) => lora2Settings({ ...SYNTHETIC_SETTINGS, ...over });
const PRIOR_RANK = settings().priorRank;

describe('LoRA² rank recovery (synthetic)', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = new Engine(await testGpu());
  });
  afterAll(() => engine?.destroy());

  it('follows the float64 reference step by step (λ, D, loss, capacity growth)', async () => {
    const steps = 140;
    // Every step reads the three layers' ∂L/∂f back in one wait (stepAdapters), not one per layer.
    const readMany = vi.spyOn(engine, 'readMany');
    const gpu = await trainSynthetic(engine, settings(), { steps, trace: true });
    expect(readMany).toHaveBeenCalledTimes(steps);
    expect(readMany.mock.calls.every(([ts]) => ts.length === SYNTHETIC_TRUE_RANKS.length)).toBe(true);
    readMany.mockRestore();
    const ref = trainSyntheticRef(settings(), { steps, trace: true });
    let worstRate = 0;
    let worstLoss = 0;
    for (let t = 0; t < steps; t++) {
      expect(gpu.trace[t].ranks, `step ${t + 1}`).toEqual(ref.trace[t].ranks);
      for (let l = 0; l < SYNTHETIC_TRUE_RANKS.length; l++) {
        const r = ref.trace[t];
        const g = gpu.trace[t];
        worstRate = Math.max(worstRate, Math.abs(g.rates[l] - r.rates[l]) / r.rates[l]);
        worstLoss = Math.max(worstLoss, Math.abs(g.losses[l] - r.losses[l]) / (r.losses[l] + 1e-3));
      }
    }
    console.log(
      `[trajectory] ${steps} steps, ranks ${ref.trace[steps - 1].ranks}; worst rel. λ ${worstRate.toExponential(2)}, loss ${worstLoss.toExponential(2)}`,
    );
    // The run must have exercised growth past the first chunk, or it checks less than it claims.
    expect(Math.max(...gpu.layers.map((l) => l.capacity))).toBeGreaterThan(8);
    expect(worstRate).toBeLessThan(1e-3);
    expect(worstLoss).toBeLessThan(1e-2);
  });

  it('holds ρ during the rate warm-up, then follows the float64 reference (scale-free ρ gradient)', async () => {
    const steps = 40;
    const over = settings({ rateWarmup: 25, scaleFreeRate: true });
    const gpu = await trainSynthetic(engine, over, { steps, trace: true });
    const ref = trainSyntheticRef(over, { steps, trace: true });
    const start = gpu.trace[0].rates;
    for (let t = 0; t < 25; t++) expect(gpu.trace[t].rates, `step ${t + 1}`).toEqual(start);
    expect(gpu.trace[25].rates.every((r, l) => r !== start[l])).toBe(true);
    for (let t = 0; t < steps; t++) {
      expect(gpu.trace[t].ranks, `step ${t + 1}`).toEqual(ref.trace[t].ranks);
      gpu.trace[t].rates.forEach((r, l) =>
        expect(Math.abs(r - ref.trace[t].rates[l]) / ref.trace[t].rates[l]).toBeLessThan(1e-3),
      );
    }
  });

  it('recovers ranks 1, 4, 16 in order, each within 2×', async () => {
    const { layers, ms } = await trainSynthetic(engine, settings(), { steps: 300 });
    const ranks = layers.map((l) => l.rank);
    console.log(
      `[rank recovery] true ${SYNTHETIC_TRUE_RANKS} → learned ${ranks}; fit error ${layers.map((l) => l.fitError.toFixed(3))}; ${(ms / 1000).toFixed(1)} s`,
    );
    expect(ranks[0]).toBeLessThan(ranks[1]);
    expect(ranks[1]).toBeLessThan(ranks[2]);
    layers.forEach((l) => {
      expect(l.rank).toBeLessThanOrEqual(2 * l.trueRank);
      expect(l.rank).toBeGreaterThanOrEqual(l.trueRank / 2);
    });
  });

  it('the rank prior controls growth', async () => {
    const steps = 200;
    const ranks = async (over: Partial<Lora2Settings>) =>
      (await trainSynthetic(engine, settings(over), { steps })).layers.map((l) => l.rank);
    const none = await ranks({ rankPrior: false });
    const sums = [none.reduce((a, b) => a + b)];
    for (const rateSigma of [1, 0.3, 0.2]) sums.push((await ranks({ rateSigma })).reduce((a, b) => a + b));
    console.log(`[rank prior] none ${none}; Σ ranks with none, σ = 1, 0.3, 0.2: ${sums}`);
    expect(Math.max(...none)).toBeGreaterThan(4 * PRIOR_RANK);
    for (let i = 1; i < sums.length; i++) expect(sums[i]).toBeLessThanOrEqual(sums[i - 1]);
    expect(sums[sums.length - 1]).toBeLessThan(sums[0]);
  });
});
