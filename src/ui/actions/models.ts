// Models brought from disk: import a picked folder into the browser's storage (OPFS) with progress, list and
// delete the imported ones, and start a session that trains one (src/models/localModels.ts does the files).
import {
  deleteLocalModel,
  importLocalModel,
  LOCAL_SCHEME,
  listLocalModels,
  pickedFolder,
  planImport,
  removeIncompleteModels,
  uniqueModelName,
  type LocalModelInfo,
} from '../../models/localModels';
import { formatBytes } from '../../train/sessionStore';
import { describeError } from '../errorText';
import { showNotice, useStudio } from '../studioStore';
import { newSession, refreshSessions } from './session';

export interface ModelsState {
  local: LocalModelInfo[];
  /** An import running now: bytes copied of total, and the time left at the rate so far. */
  importing?: { name: string; done: number; total: number; etaMs?: number };
  /** Why the last picked folder is not a model (what it lacks), until the next pick. */
  problem?: string;
}

const opfs = () => navigator.storage.getDirectory();
const set = (patch: Partial<ModelsState>) =>
  useStudio.setState((s) => ({ models: { ...s.models, ...patch } }));

export async function refreshModels(): Promise<void> {
  try {
    set({ local: await listLocalModels(await opfs()) });
  } catch (e) {
    console.error(e);
    showNotice(describeError(e));
  }
}

/** Imports the folder an <input webkitdirectory> picked; the name is the folder's, made unique. */
export async function importModelFolder(files: FileList | File[]): Promise<void> {
  if (useStudio.getState().models.importing) return;
  const { folderName, files: picked } = pickedFolder(Array.from(files));
  const plan = planImport(folderName, picked);
  if (plan.missing.length > 0) {
    set({ problem: `“${folderName}” is not a model folder: it lacks ${plan.missing.join('; ')}.` });
    return;
  }
  const root = await opfs();
  await removeIncompleteModels(root);
  const name = uniqueModelName(
    plan.name,
    (await listLocalModels(root)).map((m) => m.name),
  );
  set({ problem: undefined, importing: { name, done: 0, total: plan.bytes } });
  const startedAt = performance.now();
  // Large models: ask the browser not to evict them under storage pressure (it may say no).
  await navigator.storage.persist?.().catch(() => false);
  try {
    await importLocalModel(root, name, plan, (done, total) => {
      const elapsed = performance.now() - startedAt;
      set({
        importing: { name, done, total, etaMs: done > 0 ? (elapsed * (total - done)) / done : undefined },
      });
    });
    showNotice(
      {
        title: 'Model imported',
        message: `“${name}” (${formatBytes(plan.bytes)}, ${plan.files.length} files) is ready: choose “Use” to train it.`,
        action: 'none',
      },
      { info: true },
    );
  } catch (e) {
    console.error(e);
    showNotice(describeError(e));
  } finally {
    set({ importing: undefined });
    await Promise.all([refreshModels(), refreshSessions()]); // the storage line counts the model too
  }
}

export async function deleteModel(name: string): Promise<void> {
  try {
    await deleteLocalModel(await opfs(), name);
  } catch (e) {
    showNotice(describeError(e));
  }
  await Promise.all([refreshModels(), refreshSessions()]);
}

/** A new session that trains the imported model `name` (the model loads when the session opens). */
export async function trainLocalModel(name: string): Promise<void> {
  await newSession({ modelUrl: `${LOCAL_SCHEME}${name}` });
}
