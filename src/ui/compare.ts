// Comparing saved sessions (the Sessions tab's Compare panel): a LoRA² run against a fixed-rank one on the same
// photos, or two LoRA² settings. Pure functions over the stored session records and metric histories: the
// summary row of each, what makes two runs not comparable, and the chart series aligned on one step axis.
import type { HistoryRecord, SessionRecord } from '../train/sessionStore';
import { LossEma } from './metrics';

/** At most this many sessions side by side (columns of the table, lines of the charts, columns of renders). */
export const MAX_COMPARED = 4;

/** One colour per compared session, in pick order (distinct from the block hues of the rank chart). */
export const COMPARE_COLORS = ['#7c9cff', '#f0a64a', '#5fd39a', '#e46ea6'];

export interface CompareEntry {
  session: SessionRecord;
  history?: HistoryRecord;
  /** Steps of the session's LoRA checkpoints (trained or imported); empty: nothing to render with. */
  checkpoints: number[];
}

export interface CompareSummary {
  id: string;
  name: string;
  /** "LoRA² ≤64" or "fixed r=16". */
  mode: string;
  /** Last step with recorded metrics (0: never trained in this browser). */
  step: number;
  totalSteps: number;
  photos: number;
  /** Mean loss over the last quarter of the recorded steps (a single step's loss is mostly noise). */
  finalLoss?: number;
  /** Ranks of the layers at the last recorded step. */
  ranks?: { min: number; mean: number; max: number };
  /** The adapter at its current ranks, f32. */
  adapterBytes?: number;
  /** A fixed-rank LoRA at the session's max rank on the same layers. */
  fixedRankBytes?: number;
}

export function modeLabel(s: SessionRecord['settings']): string {
  return s.mode === 'fixed' ? `fixed r=${s.fixedRank}` : `LoRA² ≤${s.maxRank}`;
}

/**
 * The fixed rank whose LoRA on the same layers is as large as a LoRA² run's adapter ended: the fair baseline
 * at an equal parameter budget. `fixedRankBytes` is a fixed-rank LoRA at `maxRank` on those layers, so one rank
 * costs fixedRankBytes / maxRank. Undefined without both sizes.
 */
export function equalSizeRank(
  adapterBytes: number,
  fixedRankBytes: number,
  maxRank: number,
): number | undefined {
  if (!(adapterBytes > 0 && fixedRankBytes > 0 && maxRank > 0)) return undefined;
  return Math.min(256, Math.max(1, Math.round(adapterBytes / (fixedRankBytes / maxRank))));
}

/** Mean of the last quarter of `values` (at least one value), NaNs left out; undefined when there is none. */
export function tailMean(values: readonly number[], fraction = 0.25): number | undefined {
  const n = Math.max(1, Math.ceil(values.length * fraction));
  const tail = values.slice(-n).filter(Number.isFinite);
  return tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : undefined;
}

export function summarize(e: CompareEntry): CompareSummary {
  const { session: s, history: h } = e;
  const recorded = h !== undefined && h.steps.length > 0;
  const last = recorded ? h.ranks.map((r) => r[r.length - 1]).filter(Number.isFinite) : [];
  return {
    id: s.id,
    name: s.name,
    mode: modeLabel(s.settings),
    step: recorded ? h.steps[h.steps.length - 1] : 0,
    totalSteps: s.settings.steps,
    photos: s.photos.length,
    finalLoss: recorded ? tailMean(h.loss) : undefined,
    ranks: last.length
      ? {
          min: Math.min(...last),
          mean: last.reduce((a, b) => a + b, 0) / last.length,
          max: Math.max(...last),
        }
      : undefined,
    adapterBytes: recorded && h.adapterBytes > 0 ? h.adapterBytes : undefined,
    fixedRankBytes: recorded && h.fixedRankBytes > 0 ? h.fixedRankBytes : undefined,
  };
}

/**
 * What a reader must know before reading the numbers side by side: losses of different models, prompts or
 * photo sets do not compare, and a session without recorded steps has nothing to chart.
 */
export function compareCaveats(entries: readonly CompareEntry[]): string[] {
  if (entries.length < 2) return [];
  const out: string[] = [];
  const differ = <T>(f: (e: CompareEntry) => T) => new Set(entries.map(f)).size > 1;
  if (differ((e) => e.session.modelUrl))
    out.push('These sessions use different models: their losses and images do not compare.');
  if (differ((e) => e.session.settings.prompt))
    out.push('The prompts differ: each session is rendered with the prompt you give, identifier included.');
  if (differ((e) => e.session.photos.length))
    out.push('The sessions trained on different numbers of photos.');
  const untrained = entries.filter((e) => !e.history || e.history.steps.length === 0);
  if (untrained.length)
    out.push(
      `${untrained.map((e) => `“${e.session.name}”`).join(', ')} ${untrained.length > 1 ? 'have' : 'has'} ` +
        'no recorded training steps in this browser: nothing to chart.',
    );
  const steps = entries.map((e) => summarize(e).step).filter((s) => s > 0);
  if (new Set(steps).size > 1) out.push('The sessions trained for different numbers of steps.');
  return out;
}

/**
 * Series on one x axis for uPlot: the union of every series' steps, ascending, and each series' value there
 * (null where it has no point; the chart bridges the gap).
 */
export function alignSeries(
  series: readonly { steps: readonly number[]; values: readonly number[] }[],
): [number[], ...(number | null)[][]] {
  const xs = [...new Set(series.flatMap((s) => s.steps))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const y: (number | null)[] = xs.map(() => null);
    s.steps.forEach((step, t) => {
      const v = s.values[t];
      y[index.get(step)!] = Number.isFinite(v) ? v : null;
    });
    return y;
  });
  return [xs, ...ys];
}

/** The loss line the Train tab draws (bias-corrected moving average), per recorded step. */
export function smoothedLoss(h: HistoryRecord): number[] {
  const ema = new LossEma();
  return h.loss.map((l) => ema.next(l));
}

/** Mean rank over the layers at each recorded step. */
export function meanRanks(h: HistoryRecord): number[] {
  return h.steps.map((_, t) => {
    const r = h.ranks.map((layer) => layer[t]).filter(Number.isFinite);
    return r.length ? r.reduce((a, b) => a + b, 0) / r.length : Number.NaN;
  });
}

/** Parses "1, 2, 5" into seeds; an error message for anything else (empty, negative, fractional, too many). */
export function parseSeeds(text: string, max = 8): number[] | string {
  const parts = text
    .split(/[\s,]+/)
    .map((p) => p.trim())
    .filter(Boolean);
  if (parts.length === 0) return 'Give at least one seed, e.g. 1, 2.';
  const seeds = parts.map(Number);
  const bad = parts.find((p, i) => !Number.isInteger(seeds[i]) || seeds[i] < 0 || seeds[i] > 0xffffffff);
  if (bad !== undefined) return `“${bad}” is not a seed: whole numbers from 0 to 4294967295.`;
  const unique = [...new Set(seeds)];
  if (unique.length > max) return `At most ${max} seeds at a time.`;
  return unique;
}
