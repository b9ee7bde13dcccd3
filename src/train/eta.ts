// Time left in a training run, estimated from the steps that show the steady pace. A fresh worker's first
// step compiles every GPU pipeline the step uses (minutes on a software adapter, seconds on a GPU), and a
// rank change can compile a few more; averaged in, they made the ETA of a 600-step run on lavapipe read
// 3.8 h at step 16, with 13 s steps and so 2.1 h left.

/** Steady steps averaged for the estimate: recent enough to follow a slower or faster machine. */
const WINDOW = 32;

export class StepClock {
  private readonly recent: number[] = [];
  private lastLap: number | undefined;

  /** One optimizer step's wall time; `compiled` when the step built new GPU pipelines. */
  record(ms: number, compiled: boolean): void {
    if (compiled || !(ms >= 0)) return;
    this.recent.push(ms);
    if (this.recent.length > WINDOW) this.recent.shift();
  }

  /** Records the time since the previous lap (nothing on the first), as `record` does. */
  lap(now: number, compiled: boolean): void {
    if (this.lastLap !== undefined) this.record(now - this.lastLap, compiled);
    this.lastLap = now;
  }

  /** Mean wall time of the recent steps that compiled nothing; undefined before the first one. */
  get stepMs(): number | undefined {
    if (!this.recent.length) return undefined;
    return this.recent.reduce((a, b) => a + b, 0) / this.recent.length;
  }

  etaMs(stepsLeft: number): number | undefined {
    const ms = this.stepMs;
    return ms === undefined ? undefined : ms * Math.max(0, stepsLeft);
  }
}

/**
 * Previews still to sample when training stands at `step` of `total` with one every `every` steps: one at
 * each multiple of `every` from `step` (its progress event goes out before its preview) through `total`.
 */
export function previewsLeft(step: number, total: number, every: number): number {
  if (!(every > 0) || step > total) return 0;
  const first = Math.max(1, step);
  return Math.max(0, Math.floor(total / every) - Math.floor((first - 1) / every));
}

/** The trainer's ETA plus the previews left at the last preview's duration (unknown before one ran). */
export function etaWithPreviews(
  trainingMs: number | undefined,
  step: number,
  total: number,
  every: number,
  previewMs: number | undefined,
): number | undefined {
  if (trainingMs === undefined) return undefined;
  return trainingMs + (previewMs ?? 0) * previewsLeft(step, total, every);
}
