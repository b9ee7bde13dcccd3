// Offline in Chromium: after one visit the service worker has precached the app shell, onnxruntime-web's
// wasm and the default model folder; with the network off a reload still brings the whole studio up.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { launchStudio, type Studio } from './support/browser';
import { openStudio } from './support/studio';

describe('studio offline', () => {
  let studio: Studio;
  beforeAll(async () => {
    studio = await launchStudio(inject('baseURL'));
  });
  afterAll(async () => {
    await studio?.context.setOffline(false);
    await studio?.close();
  });

  it('loads with the network off after a first visit', async () => {
    const page = await openStudio(studio);
    await page.getByTestId('offline-ready').waitFor({ timeout: 60_000 });
    const manifest = (await (await page.request.get('/precache-manifest.json')).json()) as {
      files: string[];
      wasm: string[];
      models: string[];
    };
    expect(manifest.files).toContain('/index.html');
    expect(manifest.wasm.some((f) => f.endsWith('.wasm'))).toBe(true);
    const cached = await page.evaluate(async (files) => {
      const keys = await caches.keys();
      const cache = await caches.open(keys.find((k) => k.startsWith('lora2-precache-'))!);
      return (await Promise.all(files.map((f) => cache.match(f)))).filter(Boolean).length;
    }, manifest.files);
    expect(cached).toBe(manifest.files.length);

    await studio.context.setOffline(true);
    const response = await page.reload();
    expect(response?.fromServiceWorker()).toBe(true);
    await page.getByTestId('train-view').waitFor({ timeout: 30_000 });
    expect(await page.title()).toBe('LoRA² Studio');
    // The worker script came from the cache too: the GPU self-test runs offline.
    const selftest = page.locator('[data-testid="selftest"]:not([data-ok="pending"])');
    await selftest.waitFor({ timeout: 60_000 });
    expect(await selftest.getAttribute('data-ok')).toBe('true');
    // onnxruntime-web's wasm (and the model files, when the build has them) are served offline.
    for (const url of [...manifest.wasm.filter((f) => f.endsWith('.wasm')), ...manifest.models.slice(0, 3)]) {
      const status = await page.evaluate(async (u) => (await fetch(u)).status, url);
      expect(status, url).toBe(200);
    }
    const range = await page.evaluate(
      async (u) => {
        const r = await fetch(u, { headers: { Range: 'bytes=0-3' } });
        return { status: r.status, bytes: [...new Uint8Array(await r.arrayBuffer())] };
      },
      manifest.wasm.find((f) => f.endsWith('.wasm'))!,
    );
    expect(range).toEqual({ status: 206, bytes: [0x00, 0x61, 0x73, 0x6d] });

    // The default model loads offline too, and the real worker hands its sampling.json (precached with it) to
    // the Generate tab, which starts from the model's recommended guidance.
    const chip = page.locator('[data-testid="model-chip"]:is([data-phase="ready"], [data-phase="error"])');
    await chip.waitFor({ timeout: 120_000 });
    expect(await chip.getAttribute('data-phase')).toBe('ready');
    const recommended = JSON.parse(readFileSync('public/models/emoji-tiny/sampling.json', 'utf8')) as {
      guidance: number;
      recomputeEpsilon?: boolean;
    };
    await page.getByTestId('tab-generate').click();
    expect(await page.getByTestId('gen-guidance').inputValue()).toBe(String(recommended.guidance));
    expect(await page.getByTestId('gen-clip-eps').inputValue()).toBe(
      recommended.recomputeEpsilon ? 'recompute' : 'keep',
    );
    await studio.context.setOffline(false);
  });
});
