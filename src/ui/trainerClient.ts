// The UI's handle on the trainer worker: one comlink proxy, created lazily.
import * as Comlink from 'comlink';
import type { TrainerApi } from '../../workers/api';

let proxy: Comlink.Remote<TrainerApi> | undefined;

export function trainer(): Comlink.Remote<TrainerApi> {
  if (!proxy) {
    const worker = new Worker(new URL('../../workers/trainer.worker.ts', import.meta.url), {
      type: 'module',
      name: 'lora2-trainer',
    });
    proxy = Comlink.wrap<TrainerApi>(worker);
  }
  return proxy;
}
