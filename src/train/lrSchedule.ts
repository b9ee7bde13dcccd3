// The learning-rate schedule of a training run: a linear warm-up, then constant or cosine decay to zero.
// It multiplies every learning rate of the step (A, B and ρ).

export type LrScheduleKind = 'constant' | 'cosine';

export interface LrSchedule {
  kind: LrScheduleKind;
  /** Optimizer steps of linear warm-up from lr/warmup to lr (0 = none). */
  warmupSteps: number;
}

export const CONSTANT_LR: Readonly<LrSchedule> = Object.freeze({ kind: 'constant', warmupSteps: 0 });

/** The multiplier of optimizer step `step` (0-based) of a `total`-step run. */
export function lrScale(s: LrSchedule, step: number, total: number): number {
  if (step < s.warmupSteps) return (step + 1) / s.warmupSteps;
  if (s.kind === 'constant') return 1;
  const span = Math.max(1, total - s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / span);
  return 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** Throws on a schedule the trainer cannot follow. */
export function checkLrSchedule(s: LrSchedule): void {
  if (s.kind !== 'constant' && s.kind !== 'cosine')
    throw new Error(`lr schedule ${String(s.kind)}: expected constant or cosine`);
  if (!(Number.isInteger(s.warmupSteps) && s.warmupSteps >= 0))
    throw new Error(`warm-up ${s.warmupSteps}: expected a whole number of steps ≥ 0`);
}
