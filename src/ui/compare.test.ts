// The Sessions tab's Compare panel: summaries of stored runs, the caveats shown above them, chart series on one
// step axis, and the seeds field.
import { describe, expect, it } from 'vitest';
import { SCHEMA_VERSION, type HistoryRecord, type SessionRecord } from '../train/sessionStore';
import { DEFAULT_TRAIN_SETTINGS } from '../train/trainSettings';
import {
  alignSeries,
  compareCaveats,
  equalSizeRank,
  meanRanks,
  parseSeeds,
  smoothedLoss,
  summarize,
  tailMean,
  type CompareEntry,
} from './compare';
import { MetricsHistory } from './metrics';

function session(id: string, patch: Partial<SessionRecord['settings']> = {}, photos = 3): SessionRecord {
  return {
    schemaVersion: SCHEMA_VERSION,
    id,
    name: `Session ${id}`,
    createdAt: 0,
    updatedAt: 0,
    modelUrl: '/models/emoji-tiny/',
    settings: { ...DEFAULT_TRAIN_SETTINGS, ...patch },
    state: 'done',
    step: 8,
    photos: Array.from({ length: photos }, (_, i) => i),
    nextPhoto: photos,
    samples: [],
    nextSample: 0,
  };
}

function history(steps: number[], loss: number[], ranks: number[][], adapterBytes = 4096): HistoryRecord {
  return {
    schemaVersion: SCHEMA_VERSION,
    layers: ranks.map((_, i) => ({ name: `down_blocks.0.l${i}`, block: 'down' as const })),
    steps,
    loss,
    ranks,
    contributions: [],
    adapterBytes,
    fixedRankBytes: 65536,
  };
}

describe('compare summaries', () => {
  it('reads the mode, the last step, the tail of the loss and the last ranks', () => {
    const h = history(
      [1, 2, 3, 4, 5, 6, 7, 8],
      [8, 7, 6, 5, 4, 3, 2, 1],
      [
        [4, 4, 5, 5, 6, 6, 7, 3],
        [4, 4, 4, 4, 4, 4, 4, 9],
      ],
    );
    const s = summarize({ session: session('a'), history: h, checkpoints: [8] });
    expect(s.mode).toBe('LoRA² ≤64');
    expect(s.step).toBe(8);
    expect(s.finalLoss).toBe(1.5); // the last quarter: steps 7 and 8
    expect(s.ranks).toEqual({ min: 3, mean: 6, max: 9 });
    expect(s.adapterBytes).toBe(4096);
    expect(s.fixedRankBytes).toBe(65536);
    expect(
      summarize({ session: session('b', { mode: 'fixed', fixedRank: 8 }), checkpoints: [] }),
    ).toMatchObject({
      mode: 'fixed r=8',
      step: 0,
      finalLoss: undefined,
      ranks: undefined,
      adapterBytes: undefined,
    });
  });

  it('averages at least one value and leaves NaN losses out', () => {
    expect(tailMean([3])).toBe(3);
    expect(tailMean([1, 2, 3, 4, 5, Number.NaN, 9, 11])).toBe(10);
    expect(tailMean([])).toBeUndefined();
    expect(tailMean([Number.NaN])).toBeUndefined();
  });

  it('draws the same smoothed loss the Train tab does', () => {
    const loss = [0.5, 0.2, Number.NaN, 0.4, 0.1, 0.3];
    const m = new MetricsHistory();
    const h = history([1, 2, 3, 4, 5, 6], loss, [[1, 1, 1, 1, 1, 1]]);
    m.load(h);
    expect(smoothedLoss(h)).toEqual(m.lossEma);
    expect(smoothedLoss(h)[0]).toBe(0.5);
  });

  it('averages the ranks over the layers at each step', () => {
    expect(
      meanRanks(
        history(
          [1, 2],
          [1, 1],
          [
            [2, 4],
            [4, 8],
          ],
        ),
      ),
    ).toEqual([3, 6]);
  });
});

describe('compare caveats', () => {
  const trained = (s: SessionRecord, steps = [1, 2]): CompareEntry => ({
    session: s,
    history: history(
      steps,
      steps.map(() => 1),
      [steps.map(() => 4)],
    ),
    checkpoints: [steps[steps.length - 1]],
  });

  it('says nothing for a LoRA² and a fixed-rank run of the same setup', () => {
    expect(compareCaveats([trained(session('a')), trained(session('b', { mode: 'fixed' }))])).toEqual([]);
    expect(compareCaveats([trained(session('a'))])).toEqual([]);
  });

  it('names models, prompts, photo counts and steps that differ, and runs with nothing recorded', () => {
    const other = { ...session('b', { prompt: 'a photo of <v2> cat' }, 5), modelUrl: 'local:sd' };
    const c = compareCaveats([
      trained(session('a')),
      trained(other, [1, 2, 3]),
      { session: session('c'), checkpoints: [] },
    ]);
    expect(c).toEqual([
      expect.stringMatching(/different models/),
      expect.stringMatching(/prompts differ/),
      expect.stringMatching(/different numbers of photos/),
      expect.stringMatching(/“Session c” has no recorded training steps/),
      expect.stringMatching(/different numbers of steps/),
    ]);
  });
});

describe('chart series', () => {
  it('puts every series on the union of their steps, null where one has no point', () => {
    expect(
      alignSeries([
        { steps: [1, 2, 4], values: [10, 20, 40] },
        { steps: [2, 3], values: [200, Number.NaN] },
      ]),
    ).toEqual([
      [1, 2, 3, 4],
      [10, 20, null, 40],
      [null, 200, null, null],
    ]);
  });
});

describe('seeds field', () => {
  it('takes whole numbers separated by commas or spaces, once each', () => {
    expect(parseSeeds('1, 2 3,,2')).toEqual([1, 2, 3]);
    expect(parseSeeds(' 0 ')).toEqual([0]);
  });
  it('explains what it cannot take', () => {
    expect(parseSeeds('')).toMatch(/at least one seed/);
    expect(parseSeeds('1, 2.5')).toMatch(/“2.5” is not a seed/);
    expect(parseSeeds('-1')).toMatch(/“-1” is not a seed/);
    expect(parseSeeds('x')).toMatch(/“x” is not a seed/);
    expect(parseSeeds('1 2 3', 2)).toMatch(/At most 2 seeds/);
  });
});

describe('fixed-rank twin', () => {
  it('takes the rank whose fixed-rank LoRA is as large as the LoRA² adapter', () => {
    // 12 layers of 64+64 features: one rank costs 12 × 128 × 4 bytes; max rank 64.
    const perRank = 12 * 128 * 4;
    expect(equalSizeRank(5.8 * perRank, 64 * perRank, 64)).toBe(6);
    expect(equalSizeRank(0.2 * perRank, 64 * perRank, 64)).toBe(1);
    expect(equalSizeRank(300 * perRank, 64 * perRank, 64)).toBe(256);
    expect(equalSizeRank(0, 64 * perRank, 64)).toBeUndefined();
    expect(equalSizeRank(perRank, 0, 64)).toBeUndefined();
  });
});
