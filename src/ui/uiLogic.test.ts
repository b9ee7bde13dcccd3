// Pure UI logic: throttled chart updates, the metrics history the charts read, the heatmap colour scale,
// and the readable form of errors.
import { describe, expect, it } from 'vitest';
import type { TrainProgress } from '../../workers/api';
import { describeError, TrainerMissingError } from './errorText';
import { colormap, EMPTY_RGB, heatmapPixels, luminance, scaleContribution } from './heatmapScale';
import { etaLabel, formatDuration, indexAtStep, MAX_SNAPSHOTS, MetricsHistory, stepChanges } from './metrics';
import { manualClock, throttle } from './throttle';

function progress(step: number, ranks: number[], extra: Partial<TrainProgress> = {}): TrainProgress {
  return {
    sessionId: 's',
    step,
    total: 100,
    loss: 1 / step,
    layers: ranks.map((rank, i) => ({
      name: ['down_blocks.0.a', 'mid_block.b', 'up_blocks.1.c'][i],
      rank,
      capacity: 8,
      rate: 0.5,
    })),
    adapterBytes: 1000 + step,
    fixedRankBytes: 64_000,
    peakGpuBytes: 0,
    stepMs: 50,
    elapsedMs: step * 50,
    etaMs: (100 - step) * 50,
    state: 'running',
    ...extra,
  };
}

describe('throttle', () => {
  it('runs at once, then at most once per interval, and always delivers the last call', () => {
    const clock = manualClock();
    const times: number[] = [];
    const t = throttle(() => times.push(clock.now()), 250, clock);
    for (let i = 0; i < 100; i++) {
      t.call();
      clock.advance(10);
    }
    // 100 calls over 1 s at 4 Hz: the leading one plus one per 250 ms (the last lands at 1 s).
    expect(times).toEqual([0, 250, 500, 750, 1000]);
    clock.advance(1000);
    expect(times.length).toBe(5);
    t.call();
    expect(times).toEqual([0, 250, 500, 750, 1000, 2000]);
  });

  it('flushes a pending call and cancels', () => {
    const clock = manualClock();
    let n = 0;
    const t = throttle(() => n++, 250, clock);
    t.call();
    t.call();
    t.flush();
    expect(n).toBe(2);
    t.call();
    t.cancel();
    clock.advance(1000);
    expect(n).toBe(2);
  });
});

describe('rank chart points', () => {
  it('keeps the first and last step and every step where some rank changes', () => {
    const steps = [1, 2, 3, 4, 5, 6, 7];
    const a = [4, 4, 5, 5, 5, 5, 5];
    const b = [4, 4, 4, 4, 3, 3, 3];
    expect(stepChanges(steps, [a, b])).toEqual([
      [1, 3, 5, 7],
      [4, 5, 5, 5],
      [4, 4, 3, 3],
    ]);
  });

  it('redraws the same stepped lines: every step reads the value of the last kept point at or before it', () => {
    const steps = Array.from({ length: 500 }, (_, i) => i + 1);
    const series = [0, 1, 2].map((l) => steps.map((s) => 2 + l + Math.floor(Math.sqrt(s * (l + 1)) / 3)));
    const [xs, ...kept] = stepChanges(steps, series);
    expect(xs.length).toBeLessThan(60);
    for (let t = 0; t < steps.length; t++) {
      const k = indexAtStep(xs, steps[t]);
      series.forEach((s, l) => expect(kept[l][k]).toBe(s[t]));
    }
  });

  it('handles one step, no steps and missing values', () => {
    expect(stepChanges([7], [[3]])).toEqual([[7], [3]]);
    expect(stepChanges([], [[]])).toEqual([[], []]);
    expect(stepChanges([1, 2, 3], [[NaN, NaN, 2]])).toEqual([
      [1, 3],
      [NaN, 2],
    ]);
  });

  it('finds the last recorded step at or before a step', () => {
    expect(indexAtStep([2, 4, 6], 1)).toBe(-1);
    expect(indexAtStep([2, 4, 6], 2)).toBe(0);
    expect(indexAtStep([2, 4, 6], 5)).toBe(1);
    expect(indexAtStep([2, 4, 6], 60)).toBe(2);
    expect(indexAtStep([], 3)).toBe(-1);
  });
});

describe('metrics history', () => {
  it('keeps loss, its moving average and per-layer ranks by step with UNet blocks', () => {
    const h = new MetricsHistory(manualClock());
    h.push(progress(1, [4, 4, 4]));
    h.push(progress(2, [5, 4, 3]));
    expect(h.layers.map((l) => l.block)).toEqual(['down', 'mid', 'up']);
    expect(h.steps).toEqual([1, 2]);
    expect(h.ranks).toEqual([
      [4, 5],
      [4, 4],
      [4, 3],
    ]);
    expect(h.lossEma[0]).toBeCloseTo(1);
    expect(h.lossEma[1]).toBeCloseTo((0.9 * 0.1 * 1 + 0.1 * 0.5) / (1 - 0.81));
    expect(h.latest?.adapterBytes).toBe(1002);
  });

  it('replaces steps after a checkpoint when a run resumes from it', () => {
    const h = new MetricsHistory(manualClock());
    for (let s = 1; s <= 5; s++) h.push(progress(s, [s, 1, 1], { contributions: [[s], [1], [1]] }));
    h.push(progress(4, [9, 1, 1]));
    expect(h.steps).toEqual([1, 2, 3, 4]);
    expect(h.ranks[0]).toEqual([1, 2, 3, 9]);
    expect(h.contributions.map((c) => c.step)).toEqual([1, 2, 3]);
  });

  it('thins old contribution snapshots but keeps the newest', () => {
    const h = new MetricsHistory(manualClock());
    for (let s = 1; s <= MAX_SNAPSHOTS * 3; s++)
      h.push(progress(s, [1, 1, 1], { contributions: [[s], [0], [0]] }));
    expect(h.contributions.length).toBeLessThanOrEqual(MAX_SNAPSHOTS);
    expect(h.contributions.length).toBeGreaterThan(MAX_SNAPSHOTS / 2);
    expect(h.contributions.at(-1)?.step).toBe(MAX_SNAPSHOTS * 3);
    expect(h.contributionMax).toBe(MAX_SNAPSHOTS * 3);
  });

  it('notifies subscribers at ~4 Hz however fast progress arrives', () => {
    const clock = manualClock();
    const h = new MetricsHistory(clock);
    let redraws = 0;
    const off = h.subscribe(() => redraws++);
    expect(redraws).toBe(1);
    for (let s = 1; s <= 200; s++) {
      h.push(progress(s, [1, 1, 1]));
      clock.advance(5);
    }
    clock.advance(250);
    expect(redraws).toBe(1 + 4);
    // Never inside push itself: the redraw gets a task of its own.
    clock.advance(1000);
    const before = redraws;
    h.push(progress(201, [1, 1, 1]));
    expect(redraws).toBe(before);
    clock.advance(0);
    expect(redraws).toBe(before + 1);
    off();
    h.push(progress(202, [1, 1, 1]));
    clock.advance(1000);
    expect(redraws).toBe(before + 1);
  });

  it('round-trips through its stored record', () => {
    const h = new MetricsHistory(manualClock());
    h.push(progress(1, [2, 3, 4], { contributions: [[0.5, 0.1], [0.2], [0.3]] }));
    const g = new MetricsHistory(manualClock());
    g.load({ schemaVersion: 2, ...structuredClone(h.toRecord()) });
    expect(g.ranks).toEqual(h.ranks);
    expect(g.lossEma).toEqual(h.lossEma);
    expect(g.contributionMax).toBeCloseTo(0.5);
  });

  it('formats durations and the progress bar’s ETA', () => {
    expect(formatDuration(4_200)).toBe('4 s');
    expect(formatDuration(125_000)).toBe('2 min 05 s');
    expect(formatDuration(3_725_000)).toBe('1 h 02 min');
    expect(formatDuration(Number.NaN)).toBe('–');
    expect(etaLabel(undefined)).toBe('–');
    expect(etaLabel({ step: 1, total: 400, etaMs: undefined })).toBe('estimating…');
    expect(etaLabel({ step: 2, total: 400, etaMs: 125_000 })).toBe('2 min 05 s');
    expect(etaLabel({ step: 400, total: 400, etaMs: 0 })).toBe('–');
  });
});

describe('heatmap colour scale', () => {
  it('maps contributions on a log scale, four decades below the maximum', () => {
    expect(scaleContribution(1, 1)).toBe(1);
    expect(scaleContribution(0.01, 1)).toBeCloseTo(0.5);
    expect(scaleContribution(1e-4, 1)).toBe(0);
    expect(scaleContribution(1e-9, 1)).toBe(0);
    expect(scaleContribution(0, 1)).toBeNaN();
    expect(scaleContribution(-1, 1)).toBeNaN();
    expect(scaleContribution(5, 1)).toBe(1);
  });

  it('gets brighter monotonically and paints empty cells as background', () => {
    let prev = -1;
    for (let t = 0; t <= 1; t += 0.05) {
      const l = luminance(colormap(t));
      expect(l).toBeGreaterThan(prev);
      prev = l;
    }
    expect(colormap(Number.NaN)).toEqual(EMPTY_RGB);
    expect(colormap(2)).toEqual(colormap(1));
  });

  it('lays out layers × positions, dims positions past the rank and pads short rows', () => {
    const px = heatmapPixels([[1, 0.01, 1], [1]], 3, 1, [2, 1]);
    const at = (y: number, x: number) => [...px.subarray((y * 3 + x) * 4, (y * 3 + x) * 4 + 3)];
    expect(at(0, 0)).toEqual(colormap(1));
    expect(at(0, 1)).toEqual(colormap(0.5));
    // Past the rank: the same colour at 35 % (Uint8ClampedArray rounds).
    expect(at(0, 2)).toEqual(colormap(1).map((c) => Math.round(c * 0.35)));
    expect(at(1, 1)).toEqual(EMPTY_RGB);
  });
});

describe('readable errors', () => {
  it('offers resume after a lost device, naming the checkpoint', () => {
    const r = describeError(
      {
        name: 'DeviceLostError',
        kind: 'device-lost',
        message: 'The GPU device was lost (unknown).',
        advice: 'The GPU driver reset.',
      },
      { checkpointStep: 150 },
    );
    expect(r).toMatchObject({ title: 'The GPU was lost', action: 'resume' });
    expect(r.advice).toMatch(/from the last checkpoint \(step 150\)/);
    // Thrown through comlink, only name and message survive.
    expect(describeError(Object.assign(new Error('lost'), { name: 'DeviceLostError' })).action).toBe(
      'resume',
    );
  });

  it('explains out-of-memory, bad model files, missing trainer methods and a full disk', () => {
    expect(
      describeError({
        name: 'GpuOutOfMemoryError',
        kind: 'out-of-memory',
        message: 'm',
        advice: 'Lower the batch size',
      }),
    ).toMatchObject({ title: 'The GPU ran out of memory', advice: 'Lower the batch size' });
    expect(describeError({ name: 'SafetensorsError', message: 'safetensors: truncated' }).title).toBe(
      'The model could not be loaded',
    );
    const model = describeError(new Error('latent models (VAE) are not supported yet'), { loading: 'model' });
    expect(model).toMatchObject({
      title: 'The model could not be loaded',
      advice: expect.stringMatching(/diffusers/),
    });
    const missing = describeError(Object.assign(new TrainerMissingError('startTraining')));
    expect(missing.title).toBe('Training is not available yet');
    expect(describeError({ name: 'StorageFullError', message: 'full' }).action).toBe('sessions');
    expect(describeError('boom')).toMatchObject({ title: 'Something went wrong', message: 'boom' });
  });
});
