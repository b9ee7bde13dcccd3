// LoRA² importance math: closed forms against brute force and finite differences.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CAPACITY_POLICY, planCapacity } from './capacity';
import {
  effectiveRank,
  importance,
  importanceGradRate,
  priorRate,
  rateForRank,
  rateGradFromImportanceGrad,
  ratePriorLoss,
  scaleFreeRateGrad,
  softplus,
  softplusInverse,
} from './importance';

describe('LoRA² importance', () => {
  it('is a decreasing pmf prefix that does not depend on D', () => {
    const f = importance(0.3, 200);
    for (let i = 1; i < f.length; i++) expect(f[i]).toBeLessThan(f[i - 1]);
    expect(f.reduce((a, b) => a + b, 0)).toBeCloseTo(1 - Math.exp(-0.3 * 200), 12);
    expect(importance(0.3, 5)[3]).toBe(f[3]);
  });

  it('effective rank is the smallest D whose mass reaches k', () => {
    for (const rate of [0.01, 0.05, 0.2, 0.77, 1.5, 4]) {
      const f = importance(rate, 1000);
      let mass = 0;
      let d = 0;
      while (mass < 0.9) mass += f[d++];
      expect(effectiveRank(rate, 0.9, 1000)).toBe(Math.max(1, d));
    }
    expect(effectiveRank(1e-6, 0.9, 64)).toBe(64);
    expect(effectiveRank(50, 0.9, 64)).toBe(1);
  });

  it('prior rate has its quantile at r0, and rateForRank lands inside the bucket', () => {
    expect(effectiveRank(priorRate(2, 0.9), 0.9, 64)).toBe(2);
    for (const r of [1, 2, 4, 7, 16, 33]) expect(effectiveRank(rateForRank(r, 0.9), 0.9, 64)).toBe(r);
  });

  it('∂f/∂λ matches central differences', () => {
    const lam = 0.37;
    const g = importanceGradRate(lam, 12);
    const h = 1e-6;
    const fp = importance(lam + h, 12);
    const fm = importance(lam - h, 12);
    g.forEach((v, i) => expect(v).toBeCloseTo((fp[i] - fm[i]) / (2 * h), 8));
  });

  it('ρ gradients (importance path and prior) match central differences', () => {
    const gradF = [0.3, -1.2, 0.7, 0.05, 2];
    const loss = (rho: number) => {
      const f = importance(softplus(rho), gradF.length);
      return f.reduce((s, v, i) => s + v * gradF[i], 0);
    };
    const rho = -0.4;
    const h = 1e-6;
    expect(rateGradFromImportanceGrad(rho, gradF)).toBeCloseTo((loss(rho + h) - loss(rho - h)) / (2 * h), 8);
    const prior = { mean: priorRate(2, 0.9), sigma: 0.3, datasetSize: 5 };
    const pl = (r: number) => ratePriorLoss(r, prior).loss;
    expect(ratePriorLoss(rho, prior).gradRho).toBeCloseTo((pl(rho + h) - pl(rho - h)) / (2 * h), 8);
  });

  it('softplus inverse round-trips', () => {
    for (const y of [1e-3, 0.5, 2, 40]) expect(softplus(softplusInverse(y))).toBeCloseTo(y, 10);
  });
});

describe('capacity planning', () => {
  const p = DEFAULT_CAPACITY_POLICY;
  it('grows in chunks when the rank exceeds capacity', () => {
    expect(planCapacity(9, 8, p)).toBe(16);
    expect(planCapacity(8, 8, p)).toBe(8);
    expect(planCapacity(70, 64, { ...p, maxRank: 64 })).toBe(70);
  });
  it('releases with hysteresis', () => {
    expect(planCapacity(10, 24, p)).toBe(24); // one spare chunk: keep
    expect(planCapacity(3, 24, p)).toBe(16); // two spare chunks: release down to needed + one chunk
    expect(planCapacity(3, 16, p)).toBe(16);
  });
});

describe('scale-free ρ gradient', () => {
  const rho = softplusInverse(0.4);
  const f = importance(0.4, 6);

  it('is the exact gradient minus its "all of f larger" part', () => {
    // A loss that only wants every f_i scaled up alike: ∂L/∂f_i ∝ 1/f_i (d/dε of L(f·(1+ε))).
    const scaleOnly = Array.from(f, (v) => -1 / v);
    expect(Math.abs(rateGradFromImportanceGrad(rho, scaleOnly))).toBeGreaterThan(0.5);
    expect(scaleFreeRateGrad(rho, scaleOnly)).toBeCloseTo(0, 12);
    // Adding such a part changes the exact gradient and leaves the scale-free one as it was.
    const g = [0.3, -0.2, 0.1, 0.05, -0.4, 0.2];
    const mixed = g.map((v, i) => v + scaleOnly[i]);
    expect(scaleFreeRateGrad(rho, mixed)).toBeCloseTo(scaleFreeRateGrad(rho, g), 12);
  });

  it('asks for more rank (positive: ρ goes down) when the later positions would pay more', () => {
    const lateWantsMore = Array.from(f, (_, i) => (i >= 3 ? -1 : 0));
    const earlyWantsMore = Array.from(f, (_, i) => (i < 3 ? -1 : 0));
    expect(scaleFreeRateGrad(rho, lateWantsMore)).toBeGreaterThan(0);
    expect(scaleFreeRateGrad(rho, earlyWantsMore)).toBeLessThan(0);
  });

  it('is zero at rank 1, where there is nothing to compare', () => {
    expect(scaleFreeRateGrad(rho, [-3])).toBe(0);
  });
});
