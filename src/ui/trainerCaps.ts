// Which trainer methods this worker build implements, asked once through `capabilities()`; the UI checks
// before offering training, sampling or export, and says so in words when a method is not there yet.
import type { TrainerMethod } from '../../workers/api';
import { TrainerMissingError } from './errorText';
import { trainer } from './trainerClient';

let caps: Promise<ReadonlySet<TrainerMethod>> | undefined;

export function trainerCapabilities(): Promise<ReadonlySet<TrainerMethod>> {
  caps ??= trainer()
    .capabilities()
    .then((list) => new Set(list));
  caps.catch(() => (caps = undefined));
  return caps;
}

/** Throws TrainerMissingError when the worker lacks `method`. */
export async function requireTrainerMethod(method: TrainerMethod): Promise<void> {
  if (!(await trainerCapabilities()).has(method)) throw new TrainerMissingError(method);
}

/** Step of the session's newest checkpoint (trained or imported); undefined when it has none or cannot say. */
export async function lastCheckpointStep(id: string): Promise<number | undefined> {
  if (!(await trainerCapabilities()).has('listCheckpoints')) return undefined;
  const list = await trainer()
    .listCheckpoints(id)
    .catch(() => []);
  return list.length ? Math.max(...list.map((c) => c.step)) : undefined;
}
