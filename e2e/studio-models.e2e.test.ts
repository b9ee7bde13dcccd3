// Bringing a model from disk (Sessions tab → Models): a folder that is not a model is refused with what it
// lacks; a model folder (public/models/micro-latent, picked as a directory) is copied into the browser's storage
// with progress, listed with its size, and a session on it loads it from there on the real worker, after a
// reload too; deleting it says so when that session's model is loaded next.
import { mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { launchStudio, screenshot, type Studio } from './support/browser';
import { openStudio, SCREENSHOTS } from './support/studio';

const MODEL_DIR = 'public/models/micro-latent';

describe('models imported from disk (OPFS, real worker)', () => {
  let studio: Studio;
  beforeAll(async () => {
    studio = await launchStudio(inject('baseURL'));
  });
  afterAll(async () => {
    await studio?.close();
  });

  it(
    'imports a model folder, loads it from OPFS (after a reload too), and deletes it',
    { timeout: 600_000 },
    async () => {
      const page = await openStudio(studio);
      // What a tab closed mid-import leaves: a model folder without its completion mark.
      const opfsModels = () =>
        page.evaluate(async () => {
          const root = await navigator.storage.getDirectory();
          const dir = await root.getDirectoryHandle('models', { create: true });
          const names: string[] = [];
          for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys())
            names.push(name);
          return names.sort();
        });
      await page.evaluate(async () => {
        const root = await navigator.storage.getDirectory();
        const models = await root.getDirectoryHandle('models', { create: true });
        const dir = await models.getDirectoryHandle('stale', { create: true });
        await dir.getFileHandle('config.json', { create: true });
      });
      expect(await opfsModels()).toEqual(['stale']);
      await page.getByTestId('tab-sessions').click();
      const input = page.getByTestId('model-import-input');

      // Not a model: refused before anything is copied, naming what is missing.
      const notModel = mkdtempSync(join(tmpdir(), 'not-a-model-'));
      writeFileSync(join(notModel, 'config.json'), '{}');
      await input.setInputFiles(notModel);
      expect(await page.getByTestId('model-import-problem').textContent()).toMatch(
        /is not a model folder: it lacks unet\.safetensors .*text_encoder\.onnx .*a tokenizer/,
      );
      expect(await page.locator('[data-testid="model-row"][data-model^="not-a-model"]').count()).toBe(0);

      // A model: copied with progress, listed with its files and size.
      await input.setInputFiles(MODEL_DIR);
      const row = page.locator('[data-testid="model-row"][data-model="micro-latent"]');
      await row.waitFor({ timeout: 60_000 });
      expect(await page.getByTestId('model-import-problem').count()).toBe(0);
      // The half-written one was never listed, and the import cleared it away.
      expect(await page.locator('[data-testid="model-row"][data-model="stale"]').count()).toBe(0);
      expect(await opfsModels()).toEqual(['micro-latent']);
      const bytes = readdirSync(MODEL_DIR).reduce((a, f) => a + statSync(join(MODEL_DIR, f)).size, 0);
      const mb = (bytes / 2 ** 20).toFixed(1);
      expect(await row.textContent()).toContain(`${readdirSync(MODEL_DIR).length}`);
      expect(await row.textContent()).toMatch(new RegExp(`${mb.replace('.', '\\.')} MB`));
      await screenshot(page, 'models', SCREENSHOTS);

      // The default model is on the worker's GPU now; switching models must release it.
      const modelState = () =>
        page.evaluate(() => {
          const w = window as unknown as {
            __lora2: { studio: { getState(): { model: { phase: string; info?: { gpuBytes?: number } } } } };
          };
          const { phase, info } = w.__lora2.studio.getState().model;
          return { phase, gpuBytes: info?.gpuBytes ?? -1 };
        });
      await expect.poll(async () => (await modelState()).phase, { timeout: 120_000 }).toBe('ready');
      const defaultBytes = (await modelState()).gpuBytes;
      expect(defaultBytes).toBeGreaterThan(4 * 2 ** 20); // emoji-tiny's UNet alone is 13 MB in f16
      // Its F16 weights stay f16 on the GPU, and the model chip's tooltip says so.
      expect(await page.getByTestId('model-chip').getAttribute('title')).toMatch(
        /^UNet weights: 12\.9 MiB on the GPU, linear and conv weights f16 \(\d+ of \d+ tensors\)$/,
      );
      // `?weights=f32` in the address widens them: the worker loads the model again, at twice the weights' memory.
      await page.goto('/?weights=f32');
      const chipTitle = () =>
        page
          .getByTestId('model-chip')
          .getAttribute('title', { timeout: 1000 })
          .catch(() => '');
      await expect.poll(chipTitle, { timeout: 120_000 }).toBe('UNet weights: 25.6 MiB on the GPU, all f32');
      expect((await modelState()).gpuBytes).toBeGreaterThan(defaultBytes);
      await page.getByTestId('tab-sessions').click();

      // Use it: a new session on local:micro-latent, loaded from OPFS by the worker.
      await row.getByRole('button', { name: 'Use' }).click();
      const chip = page.locator('[data-testid="model-chip"][data-phase="ready"]');
      await expect
        .poll(() => chip.textContent({ timeout: 1000 }).catch(() => ''), { timeout: 120_000 })
        .toMatch(/micro-latent · 16 px \(latent, VAE on WebGPU\)/);
      // Only micro-latent's weights (0.7 MB in f16) and buffers remain: emoji-tiny was released.
      const switchedBytes = (await modelState()).gpuBytes;
      expect(switchedBytes).toBeGreaterThan(0);
      expect(switchedBytes).toBeLessThan(defaultBytes / 4);
      // After a reload the session still trains that model, read from the browser's storage again.
      await page.reload();
      await chip.waitFor({ timeout: 120_000 });
      expect(await chip.textContent()).toMatch(/micro-latent · 16 px/);

      // Delete it: the list forgets it, and the session's model then fails to load with the reason.
      await page.getByTestId('tab-sessions').click();
      await row.getByTestId('model-delete').click();
      await row.getByTestId('confirm-delete').click();
      await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(0);
      await page.reload();
      await page.locator('[data-testid="model-chip"][data-phase="error"]').waitFor({ timeout: 120_000 });
      expect(await page.getByTestId('model-error').textContent()).toMatch(/imported model was deleted/);
    },
  );
});
