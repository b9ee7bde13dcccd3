// Checkpoint stores: latest via the pointer, old records pruned (two kept), typed arrays intact, newer schemas refused.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lora2Settings } from '../lora/adapter';
import {
  CHECKPOINT_SCHEMA_VERSION,
  memoryCheckpointStore,
  type CheckpointStore,
  type TrainerCheckpoint,
} from './checkpoint';
import { fileCheckpointStore } from './checkpointFiles';

function ckpt(step: number, schemaVersion = CHECKPOINT_SCHEMA_VERSION): TrainerCheckpoint {
  const f = (n: number) => Float32Array.from({ length: n }, (_, i) => step + i / 8);
  return {
    schemaVersion,
    sessionId: 's',
    step,
    settings: { lora: lora2Settings() },
    rng: { words: [1, 2, 3, step], spare: undefined },
    layers: [
      {
        path: 'a.to_q',
        inFeatures: 2,
        outFeatures: 3,
        capacity: 2,
        rank: 1,
        step,
        rho: 0.5,
        rhoM: 0.1,
        rhoV: 0.01,
        A: f(4),
        Bt: f(6),
        mA: f(4),
        vA: f(4),
        mB: f(6),
        vB: f(6),
        rng: { words: [4, 3, 2, 1], spare: 0.25 },
      },
    ],
    rankHistory: [[1]],
    lossHistory: [0.5],
    elapsedMs: 10,
  };
}

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe.each([
  ['memory', async () => memoryCheckpointStore()],
  [
    'files',
    async () => {
      const d = await mkdtemp(join(tmpdir(), 'ckpt-'));
      dirs.push(d);
      return fileCheckpointStore(d);
    },
  ],
] as [string, () => Promise<CheckpointStore>][])('%s checkpoint store', (_, make) => {
  it('returns the latest by pointer, any kept step by number, and prunes older ones', async () => {
    const store = await make();
    expect(await store.get('s')).toBeUndefined();
    for (const s of [2, 4, 6]) await store.put(ckpt(s));
    expect(await store.pointer('s')).toBe(6);
    const latest = await store.get('s');
    expect(latest).toEqual(ckpt(6));
    expect(latest!.layers[0].A).toBeInstanceOf(Float32Array);
    expect((await store.get('s', 4))?.step).toBe(4);
    expect(await store.get('s', 2)).toBeUndefined();
    expect(await store.get('other')).toBeUndefined();
    const list = await store.list('s');
    expect(list.map((c) => c.step)).toEqual([4, 6]);
    // Each record's typed arrays: 3 × 4 + 3 × 6 floats.
    for (const c of list) expect(c.bytes).toBeGreaterThan(30 * 4);
    expect(await store.list('other')).toEqual([]);
  });

  it('refuses a checkpoint from a newer schema', async () => {
    const store = await make();
    await store.put(ckpt(1, CHECKPOINT_SCHEMA_VERSION + 1));
    await expect(store.get('s')).rejects.toThrow(/newer/);
  });
});

it('file store leaves no temporary files behind', async () => {
  const d = await mkdtemp(join(tmpdir(), 'ckpt-'));
  dirs.push(d);
  const store = fileCheckpointStore(d);
  await store.put(ckpt(1));
  await store.put(ckpt(2));
  expect((await readdir(join(d, 's'))).sort()).toEqual(['1.ckpt', '2.ckpt', 'pointer.json']);
});
