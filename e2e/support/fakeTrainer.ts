// Bundles the fake trainer worker (with comlink and idb-keyval) into one ES module and installs it in a
// page: the studio's `new Worker(…, { name: 'lora2-trainer' })` then starts the fake instead.
import { build } from 'vite';
import type { Page } from 'playwright-core';

let bundled: Promise<string> | undefined;

export function fakeTrainerSource(): Promise<string> {
  bundled ??= (async () => {
    const out = await build({
      configFile: false,
      logLevel: 'silent',
      build: {
        write: false,
        minify: false,
        lib: { entry: 'e2e/support/fakeTrainer.worker.ts', formats: ['es'], fileName: 'fake-trainer' },
      },
    });
    const outputs = (Array.isArray(out) ? out : [out]) as { output: { type: string; code?: string }[] }[];
    const chunk = outputs[0].output.find((o) => o.type === 'chunk');
    if (!chunk?.code) throw new Error('fake trainer bundle is empty');
    return chunk.code;
  })();
  return bundled;
}

export async function installFakeTrainer(page: Page): Promise<void> {
  const code = await fakeTrainerSource();
  await page.addInitScript((source) => {
    const Real = window.Worker;
    window.Worker = class extends Real {
      constructor(url: string | URL, opts?: WorkerOptions) {
        const fake = opts?.name === 'lora2-trainer';
        super(fake ? URL.createObjectURL(new Blob([source], { type: 'text/javascript' })) : url, opts);
      }
    } as typeof Worker;
  }, code);
}
