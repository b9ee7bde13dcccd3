// Capacity planning for a LoRA² layer: capacity grows in chunks when the effective rank needs it and is
// released with hysteresis, so allocation stays ∝ Σ D_ℓ without reallocating on every wiggle of D.

export interface CapacityPolicy {
  /** Rows added or removed at a time. */
  chunk: number;
  /** Release capacity only when at least this many whole chunks are unused. */
  releaseChunks: number;
  maxRank: number;
}

export const DEFAULT_CAPACITY_POLICY: CapacityPolicy = { chunk: 8, releaseChunks: 2, maxRank: 64 };

/** New capacity for effective rank `rank` given current `capacity` (returns `capacity` when unchanged). */
export function planCapacity(rank: number, capacity: number, p: CapacityPolicy): number {
  const needed = Math.min(p.maxRank, Math.ceil(rank / p.chunk) * p.chunk);
  if (rank > capacity) return Math.max(needed, rank);
  if (capacity - needed >= p.releaseChunks * p.chunk) return Math.max(needed + p.chunk, rank, 1);
  return capacity;
}
