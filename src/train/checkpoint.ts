// Trainer checkpoints: a versioned record (settings, step, RNG, per-layer adapter state with optimizer moments
// and capacity, rank and loss history) behind a store whose writes are atomic: the new record first, then the
// pointer. The IndexedDB store shares the studio's idb-keyval database (keys `ckpt:<session>:<step>`).
import { createStore, del, get, set, type UseStore } from 'idb-keyval';
import type { AdapterState, Lora2Settings } from '../lora/adapter';
import type { RngState } from '../models/rng';
import { valueBytes } from './sessionStore';

export const CHECKPOINT_SCHEMA_VERSION = 1;

export interface TrainerCheckpoint {
  schemaVersion: number;
  sessionId: string;
  step: number;
  settings: { lora: Lora2Settings } & Record<string, unknown>;
  rng: { words: RngState; spare: number | undefined };
  layers: AdapterState[];
  /** Per recorded step: the rank of each layer (layer order of `layers`). */
  rankHistory: number[][];
  lossHistory: number[];
  /** Prior-preservation loss per step (absent: no class images, or saved before it existed). */
  classLossHistory?: number[];
  elapsedMs: number;
}

export interface CheckpointStore {
  /** The checkpoint at `step`, or the latest (the pointer's) when step is omitted. */
  get(sessionId: string, step?: number): Promise<TrainerCheckpoint | undefined>;
  /** Writes the record, then moves the pointer to it; older records than the previous one are dropped. */
  put(ckpt: TrainerCheckpoint): Promise<void>;
  /** Step of the latest complete checkpoint. */
  pointer(sessionId: string): Promise<number | undefined>;
  /** The checkpoints a resume can use (the latest and the one kept before it), oldest first. */
  list(sessionId: string): Promise<CheckpointInfo[]>;
}

export interface CheckpointInfo {
  step: number;
  /** Stored size (typed arrays exactly, the rest estimated). */
  bytes: number;
}

interface Pointer {
  step: number;
  previous?: number;
}

/** The records a pointer reaches, oldest first; a missing one (a torn write) is left out. */
export async function reachableCheckpoints(
  pointer: Pointer | undefined,
  get: (step: number) => Promise<TrainerCheckpoint | undefined>,
): Promise<CheckpointInfo[]> {
  if (!pointer) return [];
  const steps = [...new Set([pointer.previous, pointer.step])].filter((s) => s !== undefined);
  const out: CheckpointInfo[] = [];
  for (const step of steps.sort((a, b) => a - b)) {
    const c = await get(step);
    if (c) out.push({ step, bytes: valueBytes(c) });
  }
  return out;
}

export class CheckpointSchemaError extends Error {
  override name = 'CheckpointSchemaError';
}

/** Refuses records from a newer build; older versions would be migrated here as the schema grows. */
export function checkCheckpoint(raw: unknown): TrainerCheckpoint {
  const c = raw as TrainerCheckpoint;
  if (typeof c !== 'object' || c === null || typeof c.schemaVersion !== 'number')
    throw new CheckpointSchemaError('not a trainer checkpoint');
  if (c.schemaVersion > CHECKPOINT_SCHEMA_VERSION)
    throw new CheckpointSchemaError(
      `checkpoint schema ${c.schemaVersion} is newer than this build's ${CHECKPOINT_SCHEMA_VERSION}`,
    );
  return c;
}

export const checkpointKeys = {
  record: (session: string, step: number) => `ckpt:${session}:${step}`,
  pointer: (session: string) => `ckpt-ptr:${session}`,
};

/** idb-keyval store `lora2-studio`/`kv` (structured clone keeps the Float32Arrays as they are). */
export function idbCheckpointStore(store: UseStore = createStore('lora2-studio', 'kv')): CheckpointStore {
  return keyValueCheckpointStore({
    get: (k) => get(k, store),
    set: (k, v) => set(k, v, store),
    del: (k) => del(k, store),
  });
}

/** In memory (tests and the worker's fallback when storage is unavailable). */
export function memoryCheckpointStore(): CheckpointStore {
  const data = new Map<string, unknown>();
  return keyValueCheckpointStore({
    get: async (k) => structuredClone(data.get(k)),
    set: async (k, v) => void data.set(k, structuredClone(v)),
    del: async (k) => void data.delete(k),
  });
}

interface Kv {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
}

function keyValueCheckpointStore(kv: Kv): CheckpointStore {
  const pointer = async (session: string) =>
    (await kv.get(checkpointKeys.pointer(session))) as Pointer | undefined;
  const store: CheckpointStore = {
    async get(session, step) {
      const s = step ?? (await pointer(session))?.step;
      if (s === undefined) return undefined;
      const raw = await kv.get(checkpointKeys.record(session, s));
      return raw === undefined ? undefined : checkCheckpoint(raw);
    },
    async put(ckpt) {
      const old = await pointer(ckpt.sessionId);
      await kv.set(checkpointKeys.record(ckpt.sessionId, ckpt.step), ckpt);
      await kv.set(checkpointKeys.pointer(ckpt.sessionId), { step: ckpt.step, previous: old?.step });
      // Keep the previous record too (a torn write of the next one still leaves two good ones behind).
      if (old?.previous !== undefined && old.previous !== ckpt.step && old.previous !== old.step)
        await kv.del(checkpointKeys.record(ckpt.sessionId, old.previous));
    },
    async pointer(session) {
      return (await pointer(session))?.step;
    },
    async list(session) {
      return reachableCheckpoints(await pointer(session), (step) => store.get(session, step));
    },
  };
  return store;
}
