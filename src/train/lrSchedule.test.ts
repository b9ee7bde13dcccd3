import { describe, expect, it } from 'vitest';
import { checkLrSchedule, CONSTANT_LR, lrScale } from './lrSchedule';

describe('lrScale', () => {
  it('constant without warm-up is 1 everywhere', () => {
    for (const step of [0, 1, 50, 99]) expect(lrScale(CONSTANT_LR, step, 100)).toBe(1);
  });

  it('warms up linearly, then holds (constant) or follows a half cosine to ~0 at the end (cosine)', () => {
    const warm = { kind: 'constant' as const, warmupSteps: 4 };
    expect([0, 1, 2, 3, 4, 10].map((t) => lrScale(warm, t, 20))).toEqual([0.25, 0.5, 0.75, 1, 1, 1]);
    const cos = { kind: 'cosine' as const, warmupSteps: 10 };
    expect(lrScale(cos, 9, 110)).toBe(1);
    expect(lrScale(cos, 10, 110)).toBe(1);
    expect(lrScale(cos, 60, 110)).toBeCloseTo(0.5, 12);
    expect(lrScale(cos, 109, 110)).toBeCloseTo(0.5 * (1 + Math.cos((Math.PI * 99) / 100)), 12);
    expect(lrScale(cos, 109, 110)).toBeLessThan(0.001);
    // Monotone after the warm-up; steps past the end stay at 0.
    for (let t = 11; t < 110; t++) expect(lrScale(cos, t, 110)).toBeLessThan(lrScale(cos, t - 1, 110));
    expect(lrScale(cos, 500, 110)).toBeCloseTo(0, 12);
  });

  it('rejects unknown kinds and fractional or negative warm-ups', () => {
    expect(() => checkLrSchedule({ kind: 'linear' as 'cosine', warmupSteps: 0 })).toThrow(/linear/);
    expect(() => checkLrSchedule({ kind: 'cosine', warmupSteps: 2.5 })).toThrow(/warm-up/);
    expect(() => checkLrSchedule({ kind: 'cosine', warmupSteps: -1 })).toThrow(/warm-up/);
  });
});
