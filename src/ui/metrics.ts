// Training metrics outside React: loss, each layer's rank over steps, and snapshots of the per-position
// contributions. The trainer pushes every step; charts subscribe through a throttle (~4 Hz) and update
// uPlot/canvas directly, so a fast trainer never re-renders the page.
import type { TrainProgress } from '../../workers/api';
import {
  blockOfLayer,
  type ContributionSnapshot,
  type HistoryRecord,
  type LayerBlock,
} from '../train/sessionStore';
import { realClock, throttle, type Clock } from './throttle';

export const CHART_INTERVAL_MS = 250;
/** Contribution snapshots kept for the scrubber; older ones are thinned when there are more. */
export const MAX_SNAPSHOTS = 200;
const EMA_BETA = 0.9;

export interface LayerInfo {
  name: string;
  block: LayerBlock;
}

export interface LatestProgress {
  step: number;
  total: number;
  loss: number;
  adapterBytes: number;
  fixedRankBytes: number;
  peakGpuBytes: number;
  stepMs: number;
  /** Undefined while no step has run without compiling GPU pipelines. */
  etaMs?: number;
  elapsedMs: number;
  ranks: number[];
  capacities: number[];
}

/** Bias-corrected exponential moving average of a loss series (NaNs skipped): the readable line of the chart. */
export class LossEma {
  private ema = 0;
  private weight = 0;

  next(loss: number): number {
    if (Number.isFinite(loss)) {
      this.ema = EMA_BETA * this.ema + (1 - EMA_BETA) * loss;
      this.weight = EMA_BETA * this.weight + (1 - EMA_BETA);
    }
    return this.weight > 0 ? this.ema / this.weight : Number.NaN;
  }
}

export class MetricsHistory {
  layers: LayerInfo[] = [];
  steps: number[] = [];
  loss: number[] = [];
  /** Bias-corrected exponential moving average of the loss (the readable line). */
  lossEma: number[] = [];
  /** ranks[layer][t] is layer's D at steps[t]. */
  ranks: number[][] = [];
  contributions: ContributionSnapshot[] = [];
  /** Largest contribution seen in any snapshot: the heatmap's colour scale is shared across steps. */
  contributionMax = 0;
  latest?: LatestProgress;
  adapterBytes = 0;
  fixedRankBytes = 0;
  /** Bumped on every change; subscribers compare it to skip redundant redraws. */
  version = 0;

  private ema = new LossEma();
  private readonly listeners = new Set<() => void>();

  constructor(private readonly clock: Clock = realClock) {}

  /** Clears everything (a new session, or a run on other layers). */
  reset(layers: LayerInfo[] = []): void {
    this.layers = layers;
    this.steps = [];
    this.loss = [];
    this.lossEma = [];
    this.ranks = layers.map(() => []);
    this.contributions = [];
    this.contributionMax = 0;
    this.latest = undefined;
    this.adapterBytes = 0;
    this.fixedRankBytes = 0;
    this.ema = new LossEma();
    this.changed();
  }

  /** Drops points at or after `step` (a resumed run replays steps after its checkpoint). */
  private truncateFrom(step: number): void {
    let t = this.steps.length;
    while (t > 0 && this.steps[t - 1] >= step) t--;
    if (t === this.steps.length) return;
    this.steps.length = t;
    this.loss.length = t;
    this.lossEma.length = t;
    for (const r of this.ranks) r.length = t;
    this.contributions = this.contributions.filter((c) => c.step < step);
    this.recomputeEma();
  }

  private recomputeEma(): void {
    this.ema = new LossEma();
    this.lossEma = this.loss.map((l) => this.ema.next(l));
  }

  /** Adds one progress event; `blocks` maps layer names to UNet blocks when the model says so. */
  push(p: TrainProgress, blocks?: ReadonlyMap<string, LayerBlock>): void {
    const names = p.layers.map((l) => l.name);
    if (names.length !== this.layers.length || names.some((n, i) => n !== this.layers[i].name)) {
      if (this.steps.length > 0 && p.layers.length === 0) return;
      this.reset(names.map((name) => ({ name, block: blocks?.get(name) ?? blockOfLayer(name) })));
    }
    this.truncateFrom(p.step);
    this.steps.push(p.step);
    this.loss.push(p.loss);
    this.lossEma.push(this.ema.next(p.loss));
    p.layers.forEach((l, i) => this.ranks[i].push(l.rank));
    if (p.contributions) this.addSnapshot(p.step, p.contributions);
    this.adapterBytes = p.adapterBytes;
    this.fixedRankBytes = p.fixedRankBytes;
    this.latest = {
      step: p.step,
      total: p.total,
      loss: p.loss,
      adapterBytes: p.adapterBytes,
      fixedRankBytes: p.fixedRankBytes,
      peakGpuBytes: p.peakGpuBytes,
      stepMs: p.stepMs,
      etaMs: p.etaMs,
      elapsedMs: p.elapsedMs,
      ranks: p.layers.map((l) => l.rank),
      capacities: p.layers.map((l) => l.capacity),
    };
    this.changed();
  }

  private addSnapshot(step: number, rows: number[][]): void {
    const snap = { step, rows: rows.map((r) => Float32Array.from(r)) };
    for (const r of snap.rows) for (const v of r) if (v > this.contributionMax) this.contributionMax = v;
    this.contributions.push(snap);
    if (this.contributions.length > MAX_SNAPSHOTS) {
      const last = this.contributions.length - 1;
      this.contributions = this.contributions.filter((_, i) => i % 2 === 0 || i === last);
    }
  }

  load(h: HistoryRecord): void {
    this.reset(h.layers);
    this.steps = [...h.steps];
    this.loss = [...h.loss];
    this.ranks = h.layers.map((_, i) => [...(h.ranks[i] ?? [])]);
    this.contributions = [...h.contributions];
    this.contributionMax = 0;
    for (const s of h.contributions)
      for (const r of s.rows) for (const v of r) this.contributionMax = Math.max(this.contributionMax, v);
    this.adapterBytes = h.adapterBytes;
    this.fixedRankBytes = h.fixedRankBytes;
    this.recomputeEma();
    this.changed();
  }

  toRecord(): Omit<HistoryRecord, 'schemaVersion'> {
    return {
      layers: this.layers,
      steps: this.steps,
      loss: this.loss,
      ranks: this.ranks,
      contributions: this.contributions,
      adapterBytes: this.adapterBytes,
      fixedRankBytes: this.fixedRankBytes,
    };
  }

  /** The layers' ranks at their last recorded step. */
  currentRanks(): number[] {
    return this.ranks.map((r) => r[r.length - 1] ?? Number.NaN);
  }

  private changed(): void {
    this.version++;
    for (const l of this.listeners) l();
  }

  /**
   * Calls `listener` at most every `intervalMs` after changes (and once right away), each time in a task of
   * its own: never inside push (the trainer's message handler), and never in the same task as another
   * subscriber, so the charts' redraws do not add up to one long task.
   */
  subscribe(listener: () => void, intervalMs = CHART_INTERVAL_MS): () => void {
    const t = throttle(listener, intervalMs, this.clock);
    let hop: unknown;
    const onChange = () => {
      if (hop !== undefined) return;
      hop = this.clock.setTimeout(() => {
        hop = undefined;
        t.call();
      }, 0);
    };
    this.listeners.add(onChange);
    t.call();
    return () => {
      t.cancel();
      if (hop !== undefined) this.clock.clearTimeout(hop);
      this.listeners.delete(onChange);
    };
  }
}

/**
 * The points a stepped chart of integer series needs: the first, the last, and every step where any series
 * changes. A value holds until the next kept point, so the drawing is identical; a 5,000-step run with ranks
 * that move a few dozen times draws a few dozen points per layer instead of 5,000.
 */
export function stepChanges(steps: readonly number[], series: readonly (readonly number[])[]): number[][] {
  const n = steps.length;
  const keep: number[] = [];
  for (let t = 0; t < n; t++) {
    if (t === 0 || t === n - 1 || series.some((s) => !Object.is(s[t], s[t - 1]))) keep.push(t);
  }
  return [keep.map((t) => steps[t]), ...series.map((s) => keep.map((t) => s[t]))];
}

/** Index of the last recorded step at or before `step` in ascending `steps`, or -1 when there is none. */
export function indexAtStep(steps: readonly number[], step: number): number {
  let lo = 0;
  let hi = steps.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] <= step) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Steps per second from the trainer's per-step time. */
export function itPerSec(stepMs: number): number {
  return stepMs > 0 ? 1000 / stepMs : 0;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/**
 * The progress bar's ETA: '–' before a run or once it reached its last step; "estimating…" while its steps
 * so far all compiled GPU pipelines (a fresh worker's first step, minutes on a software adapter).
 */
export function etaLabel(p: Pick<LatestProgress, 'step' | 'total' | 'etaMs'> | undefined): string {
  if (!p || p.step >= p.total) return '–';
  return p.etaMs === undefined ? 'estimating…' : formatDuration(p.etaMs);
}
