import { describe, expect, it } from 'vitest';
import { etaWithPreviews, previewsLeft, StepClock } from './eta';

describe('StepClock', () => {
  it('has no estimate until a step ran without compiling pipelines', () => {
    const c = new StepClock();
    expect(c.etaMs(100)).toBeUndefined();
    c.record(180_000, true); // a fresh worker's first step on a software adapter
    expect(c.etaMs(99)).toBeUndefined();
    c.record(20_000, false);
    expect(c.etaMs(98)).toBe(98 * 20_000);
  });

  it('averages the recent steady steps and leaves out those that compiled', () => {
    const c = new StepClock();
    c.record(10, false);
    c.record(5_000, true);
    c.record(30, false);
    expect(c.stepMs).toBe(20);
    expect(c.etaMs(10)).toBe(200);
    expect(c.etaMs(-3)).toBe(0);
  });

  it('follows a change of pace within its window of 32 steps', () => {
    const c = new StepClock();
    for (let i = 0; i < 40; i++) c.record(100, false);
    for (let i = 0; i < 32; i++) c.record(50, false);
    expect(c.stepMs).toBe(50);
    c.record(Number.NaN, false);
    expect(c.stepMs).toBe(50);
  });
});

describe('previews in the ETA', () => {
  it('counts the previews at multiples of `every` from the current step through the last', () => {
    expect(previewsLeft(0, 400, 100)).toBe(4);
    expect(previewsLeft(1, 400, 100)).toBe(4);
    expect(previewsLeft(99, 400, 100)).toBe(4);
    // Step 100's progress event goes out before its preview.
    expect(previewsLeft(100, 400, 100)).toBe(4);
    expect(previewsLeft(101, 400, 100)).toBe(3);
    expect(previewsLeft(400, 400, 100)).toBe(1);
    expect(previewsLeft(350, 399, 100)).toBe(0);
    expect(previewsLeft(5, 400, 0)).toBe(0);
    expect(previewsLeft(500, 400, 100)).toBe(0);
  });

  it('adds the previews left at the latest one’s duration, once training has an estimate', () => {
    expect(etaWithPreviews(undefined, 10, 400, 100, 3_000)).toBeUndefined();
    expect(etaWithPreviews(39_000, 10, 400, 100, undefined)).toBe(39_000);
    expect(etaWithPreviews(39_000, 10, 400, 100, 3_000)).toBe(39_000 + 4 * 3_000);
    expect(etaWithPreviews(1_000, 399, 400, 0, 3_000)).toBe(1_000);
  });
});
