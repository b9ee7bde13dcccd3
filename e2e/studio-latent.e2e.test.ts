// A latent model in the browser: the studio opens public/models/micro-latent (`?model=micro-latent`: a seeded
// random SD-style folder whose VAE is vae_encoder.onnx / vae_decoder.onnx), the real worker loads its VAE in
// onnxruntime-web beside the text encoder, the model chip says it is latent, a random crop is refused with the
// reason before anything compiles, the Generate tab renders a 16 px image through the VAE decoder, and a 2-step
// run encodes the photos (saying so) and trains.
// (`LORA2_E2E_MODEL=micro-latent npx vitest run --project e2e e2e/studio-training.e2e.test.ts` runs the whole
// training flow on it: 4.4 min here.)
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { launchStudio, type Studio } from './support/browser';
import { dropFiles, emojiPng } from './support/images';
import {
  galleryImage,
  modelLoaded,
  openStudio,
  recordTrainMessages,
  trainMessage,
  trainMessagesSeen,
} from './support/studio';

describe('studio on a latent model (micro-latent, real worker)', () => {
  let studio: Studio;
  beforeAll(async () => {
    // No service worker: it would fetch the model files itself, past the route that swaps in the f16 VAE.
    studio = await launchStudio(inject('baseURL'), { serviceWorkers: 'block' });
  });
  afterAll(async () => {
    await studio?.close();
  });

  it(
    'loads the VAE, refuses random crops, generates through the decoder, encodes photos and trains',
    { timeout: 600_000 },
    async () => {
      const page = await openStudio(studio, '/?model=micro-latent');
      await modelLoaded(page);
      // The VAE runs on onnxruntime-web's WebGPU EP (SwiftShader's adapter here).
      expect(await page.getByTestId('model-chip').textContent()).toMatch(
        /micro-latent · 16 px \(latent, VAE on WebGPU\) · \d+ LoRA/,
      );

      await dropFiles(page, '[data-testid="dropzone"]', ['1f436', '1f415', '1f429'].map(emojiPng));
      await expect.poll(() => page.getByTestId('photo-thumb').count(), { timeout: 30_000 }).toBe(3);
      await page.getByTestId('setting-steps').fill('2');
      await page.locator('details.advanced').evaluate((d) => ((d as HTMLDetailsElement).open = true));
      await page.getByTestId('setting-minCrop').fill('0.8');
      await page.locator('[data-testid="settings-saved"][data-saved="true"]').waitFor({ timeout: 10_000 });
      await page.getByTestId('start').click();
      await expect
        .poll(() => trainMessage(page), {
          timeout: 120_000,
        })
        .toMatch(/Random crops need a pixel-space model/);

      /** Renders seed 7 in 2 steps and waits for the gallery to hold `count` images. */
      const generate = async (count: number) => {
        await page.getByTestId('tab-generate').click();
        await page.getByTestId('gen-steps').fill('2');
        await page.getByTestId('gen-seed').fill('7');
        await page.getByTestId('generate').click();
        await expect
          .poll(() => page.getByTestId('gallery-item').count(), { timeout: 300_000, interval: 500 })
          .toBe(count);
        expect(await page.getByTestId('generate-error').count()).toBe(0);
      };
      const reopen = async (path: string, vae: string | RegExp) => {
        await openStudio(studio, path);
        await page.locator('[data-testid="model-chip"][data-phase="ready"]').waitFor({ timeout: 120_000 });
        const chip = await page.getByTestId('model-chip').textContent();
        if (typeof vae === 'string') expect(chip).toContain(`VAE on ${vae}`);
        else expect(chip).toMatch(vae);
        return chip;
      };
      await generate(1);
      const image = await galleryImage(page, 0);
      expect([image.width, image.height]).toEqual([16, 16]);
      // Decoded pixels, not a blank canvas: the random VAE's output varies across the image.
      expect(new Set(image.data).size).toBeGreaterThan(16);
      // The same seed with the VAE on WASM (`?vae=wasm`): the same picture, to a byte's rounding.
      await reopen('/?model=micro-latent&vae=wasm', 'WASM');
      await generate(2);
      const onWasm = await galleryImage(page, 0);
      expect(Math.max(...onWasm.data.map((v, i) => Math.abs(v - image.data[i])))).toBeLessThanOrEqual(1);

      // An all-float16 export of the same VAE (src/models/fixtures/micro-latent-f16, served in place of the
      // folder's decoder), fed and read as float16 at the boundary: the same picture within f16 rounding. On an
      // adapter without shader-f16 (SwiftShader) onnxruntime-web's WebGPU EP runs it but wrongly (128/255 off
      // when it was let), so the studio keeps it on WASM and the chip's tooltip says why.
      const f16Decoder = readFileSync('src/models/fixtures/micro-latent-f16/vae_decoder.onnx');
      const pattern = '**/models/micro-latent/vae_decoder.onnx';
      let served = 0;
      await studio.context.route(pattern, (r) => {
        served++;
        return r.fulfill({ body: f16Decoder, contentType: 'application/octet-stream' });
      });
      try {
        const shaderF16 = await page.evaluate(
          async () => (await navigator.gpu.requestAdapter())?.features.has('shader-f16') ?? false,
        );
        const chip = await reopen('/?model=micro-latent', shaderF16 ? 'WebGPU' : 'WASM');
        const why = await page.getByTestId('model-chip').getAttribute('title');
        console.log(
          `f16 VAE decoder in Chromium (shader-f16 ${shaderF16}): ${chip}${why ? ` (${why})` : ''}`,
        );
        if (!shaderF16) expect(why).toMatch(/vae_decoder.onnx is float16 and this adapter has no shader-f16/);
        await generate(3);
        const f16 = await galleryImage(page, 0);
        const apart = Math.max(...f16.data.map((v, i) => Math.abs(v - image.data[i])));
        console.log(`f16 decode vs the f32 one: at most ${apart}/255 apart, the f16 file served ${served}×`);
        expect(apart).toBeLessThanOrEqual(2);
        expect(served).toBeGreaterThan(0); // the worker fetched the f16 file, not the folder's
      } finally {
        await studio.context.unroute(pattern);
      }
      await reopen('/?model=micro-latent', 'WebGPU');

      // Without the crop the run starts: the photos go through the VAE encoder (with progress), then it trains.
      await page.getByTestId('tab-train').click();
      await page.locator('details.advanced').evaluate((d) => ((d as HTMLDetailsElement).open = true));
      await page.getByTestId('setting-minCrop').fill('1');
      await page.locator('[data-testid="settings-saved"][data-saved="true"]').waitFor({ timeout: 10_000 });
      await recordTrainMessages(page);
      await page.getByTestId('start').click();
      await page.locator('[data-testid="train-controls"][data-phase="done"]').waitFor({ timeout: 400_000 });
      const said = await trainMessagesSeen(page);
      expect(said).toContain('Encoding photos with the VAE: 3 of 3');
      expect(said.indexOf('First step: compiling the GPU shaders the first time…')).toBeGreaterThan(
        said.indexOf('Encoding photos with the VAE: 3 of 3'),
      );
      expect(Number(await page.getByTestId('progress').getAttribute('data-step'))).toBe(2);
    },
  );
});
