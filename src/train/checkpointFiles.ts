// Checkpoints as files for the Node CLI: <dir>/<session>/<step>.ckpt (v8 serialization keeps typed arrays),
// and a pointer file replaced atomically (write a temporary file, then rename over the old pointer).
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import {
  checkCheckpoint,
  reachableCheckpoints,
  type CheckpointStore,
  type TrainerCheckpoint,
} from './checkpoint';

export function fileCheckpointStore(dir: string): CheckpointStore {
  const sessionDir = (s: string) => join(dir, s);
  const readPointer = async (s: string): Promise<{ step: number; previous?: number } | undefined> => {
    try {
      return JSON.parse(await readFile(join(sessionDir(s), 'pointer.json'), 'utf8'));
    } catch {
      return undefined;
    }
  };
  const store: CheckpointStore = {
    async get(session, step) {
      const s = step ?? (await readPointer(session))?.step;
      if (s === undefined) return undefined;
      try {
        return checkCheckpoint(deserialize(await readFile(join(sessionDir(session), `${s}.ckpt`))));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
    },
    async put(ckpt: TrainerCheckpoint) {
      const d = sessionDir(ckpt.sessionId);
      await mkdir(d, { recursive: true });
      const old = await readPointer(ckpt.sessionId);
      const file = join(d, `${ckpt.step}.ckpt`);
      await writeFile(`${file}.tmp`, serialize(ckpt));
      await rename(`${file}.tmp`, file);
      await writeFile(join(d, 'pointer.json.tmp'), JSON.stringify({ step: ckpt.step, previous: old?.step }));
      await rename(join(d, 'pointer.json.tmp'), join(d, 'pointer.json'));
      if (old?.previous !== undefined && old.previous !== ckpt.step && old.previous !== old.step)
        await rm(join(d, `${old.previous}.ckpt`), { force: true });
    },
    async pointer(session) {
      return (await readPointer(session))?.step;
    },
    async list(session) {
      return reachableCheckpoints(await readPointer(session), (step) => store.get(session, step));
    },
  };
  return store;
}
