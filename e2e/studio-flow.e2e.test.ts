// The studio's training flow in Chromium against a fake trainer worker (e2e/support/fakeTrainer.worker.ts):
// start, pause, resume, reload mid-run and resume from the checkpoint, previews, a lost device and its
// resume, LoRA export, generation into the gallery, checkpoints counted in session size and deleted with
// the session, the Sessions tab's comparison of a LoRA² and a fixed-rank run; no long tasks over 200 ms.
// The real trainer runs the same flow in studio-training.e2e.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { launchStudio, screenshot, type Studio } from './support/browser';
import { installFakeTrainer } from './support/fakeTrainer';
import { describeLongTask, MainThreadCpu, ownLongTasks, type LongTask } from './support/mainThread';
import { dropFiles, emojiPng } from './support/images';
import { readFile } from 'node:fs/promises';
import { decodePng } from '../src/io/png';
import { imagePixels, openSessionId, openStudio, SCREENSHOTS } from './support/studio';

describe('studio training flow (fake trainer)', () => {
  let studio: Studio;
  let cpu: MainThreadCpu | undefined;
  beforeAll(async () => {
    studio = await launchStudio(inject('baseURL'));
    cpu = new MainThreadCpu(studio.profileDir);
    await installFakeTrainer(studio.page);
    await studio.page.addInitScript(() => {
      const w = window as unknown as { __longtasks: LongTask[] };
      w.__longtasks = [];
      new PerformanceObserver((l) =>
        l
          .getEntries()
          .forEach((e) =>
            w.__longtasks.push({ start: performance.timeOrigin + e.startTime, ms: Math.round(e.duration) }),
          ),
      ).observe({ type: 'longtask' });
    });
  });
  afterAll(async () => {
    cpu?.stop();
    await studio?.close();
  });

  const step = async () => Number(await studio.page.getByTestId('progress').getAttribute('data-step'));
  const phase = (p: string) =>
    studio.page.locator(`[data-testid="train-controls"][data-phase="${p}"]`).waitFor({ timeout: 60_000 });
  const ckptKeys = () =>
    studio.page.evaluate(
      () =>
        new Promise<string[]>((resolve, reject) => {
          const open = indexedDB.open('lora2-studio');
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const req = open.result.transaction('kv').objectStore('kv').getAllKeys();
            req.onsuccess = () => resolve(req.result.map(String).filter((k) => k.startsWith('ckpt:')));
            req.onerror = () => reject(req.error);
          };
        }),
    );

  it('trains, pauses, resumes, survives a reload, previews and exports', async () => {
    const page = await openStudio(studio);
    await page.locator('[data-testid="model-chip"][data-phase="ready"]').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('model-chip').textContent()).toMatch(/fake-tiny · 32 px · 12 LoRA layers/);
    // A new session takes the model's example prompt (its sampling.json "trainPrompt"), saved with the session.
    await expect.poll(() => page.getByTestId('setting-prompt').inputValue()).toBe('<v1> dog face');
    expect(await page.getByTestId('prompt-example').textContent()).toMatch(/example: <v1> dog face/);
    await dropFiles(page, '[data-testid="dropzone"]', ['1f436', '1f415', '1f429'].map(emojiPng));
    await expect.poll(() => page.getByTestId('photo-thumb').count(), { timeout: 30_000 }).toBe(3);
    await page.getByTestId('setting-steps').fill('30');
    await page.getByTestId('setting-previewEvery').fill('10');
    await page.getByTestId('setting-previewPrompt').fill('<v1> dog in the snow'); // what the previews draw
    await page.locator('details.advanced').evaluate((d) => ((d as HTMLDetailsElement).open = true));
    await page.getByTestId('setting-checkpointEvery').fill('5');
    await page.getByTestId('setting-gradientCheckpointing').check();
    await page.locator('[data-testid="settings-saved"][data-saved="true"]').waitFor();

    // A prompt without an identifier is refused with the reason.
    await page.getByTestId('setting-prompt').fill('a photo of a dog');
    await page.getByTestId('start').click();
    expect(await page.getByTestId('train-message').textContent()).toMatch(/identifier token/);
    await page.getByTestId('setting-prompt').fill('a photo of <v1> dog');

    await page.evaluate(() => ((window as unknown as { __longtasks: LongTask[] }).__longtasks = []));
    await page.getByTestId('start').click();
    await expect.poll(step, { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
    await page.getByTestId('pause').click();
    await phase('paused');
    const pausedAt = await step();
    await page.getByTestId('resume').click();
    await expect.poll(step, { timeout: 30_000 }).toBeGreaterThan(Math.max(pausedAt, 12));

    // Reload mid-run: the session is still marked running, so the page offers to resume.
    await page.reload();
    const offer = page.getByTestId('resume-offer');
    await offer.waitFor({ timeout: 30_000 });
    expect(await offer.textContent()).toMatch(/interrupted at step \d+/);
    const points = () => page.getByTestId('rank-chart').getAttribute('data-points').then(Number);
    // The history reached at least the checkpoint at step 10 before the reload.
    await expect.poll(points).toBeGreaterThanOrEqual(10);
    await page.locator('[data-testid="model-chip"][data-phase="ready"]').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('setting-gradientCheckpointing').isChecked()).toBe(true); // saved with the session
    // Long tasks of the reload itself (parsing, first render) are not training: count from here.
    await page.evaluate(() => ((window as unknown as { __longtasks: LongTask[] }).__longtasks = []));
    await offer.getByRole('button', { name: 'Resume' }).click();
    await phase('done');
    await expect.poll(step).toBe(30);
    // The history was kept across the reload and the resumed run continued it from its checkpoint.
    const steps = await page.evaluate(
      () => (window as unknown as { __lora2: { metrics: { steps: number[] } } }).__lora2.metrics.steps,
    );
    expect(steps[0]).toBe(1);
    expect(steps.at(-1)).toBe(30);
    expect(steps.every((s, i) => i === 0 || s > steps[i - 1])).toBe(true);
    // Previews at steps 10 (before the reload), 20 and 30, newest first. One the old page was sent while
    // it unloaded may be lost (the run resumes after its checkpoint), so 20 is allowed to be missing.
    const captions = () => page.locator('[data-testid="preview-sample"] figcaption').allTextContents();
    await expect.poll(captions).toContain('step 30');
    expect(await captions()).toEqual(expect.arrayContaining(['step 30', 'step 10']));
    expect(['step 30,step 20,step 10', 'step 30,step 10']).toContain((await captions()).join(','));
    expect(await page.locator('[data-testid="preview-sample"] img').first().getAttribute('alt')).toBe(
      '<v1> dog in the snow · step 30',
    );
    expect(Number(await page.getByTestId('rank-heatmap').getAttribute('data-snapshots'))).toBeGreaterThan(5);
    const long = await page.evaluate(() => (window as unknown as { __longtasks: LongTask[] }).__longtasks);
    // A long task counts when the main thread ran over 200 ms of CPU in it (e2e/support/mainThread.ts).
    expect(
      ownLongTasks(await cpu!.measure(long), 200).map(describeLongTask),
      'long tasks while training',
    ).toEqual([]);
    await screenshot(page, 'flow-done');

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('export-kohya').click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/-lora2-kohya\.safetensors$/);
  });

  it('generates into the gallery (a before/after pair too), kept across reloads', async () => {
    const { page } = studio;
    await page.getByTestId('tab-generate').click();
    const before = await page.getByTestId('gallery-item').count();
    // The form starts from the model's sampling.json (the fake model recommends guidance 2.5, 25 steps, and ε
    // from the clipped x₀).
    expect(await page.getByTestId('gen-guidance').inputValue()).toBe('2.5');
    expect(await page.getByTestId('gen-clip-eps').inputValue()).toBe('recompute');
    await page.getByTestId('gen-seed').fill('7');
    await page.getByTestId('generate').click();
    await expect.poll(() => page.getByTestId('gallery-item').count(), { timeout: 30_000 }).toBe(before + 1);
    expect(await page.getByTestId('gallery-item').first().textContent()).toMatch(
      /seed 7 · 25 steps · ddim · guidance 2.5 · ε from clipped x₀ · LoRA 1/,
    );

    // Before/after: the same request once more without the LoRA, both kept, shown side by side.
    const compare = page.getByTestId('gen-compare');
    await page.locator('label.switch', { has: compare }).click(); // the styled track covers the checkbox
    expect(await compare.isChecked()).toBe(true);
    await page.getByTestId('generate').click();
    await expect.poll(() => page.getByTestId('gallery-item').count(), { timeout: 30_000 }).toBe(before + 3);
    const pair = page.getByTestId('gen-result').locator('figcaption');
    expect(await pair.allTextContents()).toEqual([
      expect.stringMatching(
        /^With the LoRA · .*seed 7 · 25 steps · ddim · guidance 2.5 · ε from clipped x₀ · LoRA 1$/,
      ),
      expect.stringMatching(/^Base model · .*seed 7 · 25 steps · ddim · guidance 2.5 · ε from clipped x₀$/),
    ]);
    await screenshot(page, 'flow-generate-compare');

    // Two images in one click: seeds 7 and 8, each with its pair.
    await page.getByTestId('gen-count').fill('2');
    await page.getByTestId('generate').click();
    await expect.poll(() => page.getByTestId('gallery-item').count(), { timeout: 30_000 }).toBe(before + 7);
    expect(await pair.allTextContents()).toEqual([
      expect.stringMatching(/^With the LoRA · .*seed 7 · /),
      expect.stringMatching(/^Base model · .*seed 7 · /),
      expect.stringMatching(/^With the LoRA · .*seed 8 · /),
      expect.stringMatching(/^Base model · .*seed 8 · /),
    ]);

    await page.reload();
    await page.getByTestId('tab-generate').click();
    await expect.poll(() => page.getByTestId('gallery-item').count(), { timeout: 30_000 }).toBe(before + 7);
    await screenshot(page, 'flow-generate');
  });

  it('offers resume after a lost device and deletes checkpoints with the session', async () => {
    const { page } = studio;
    await page.getByTestId('tab-train').click();
    await page.getByTestId('train-again').click();
    await expect
      .poll(() => page.getByTestId('session-name').inputValue(), { timeout: 30_000 })
      .toMatch(/\(again\)$/);
    await expect.poll(() => page.getByTestId('photo-thumb').count(), { timeout: 30_000 }).toBe(3);
    await page.locator('details.advanced').evaluate((d) => ((d as HTMLDetailsElement).open = true));
    await page.getByTestId('setting-seed').fill('13'); // the fake trainer loses its device at step 7
    await page.locator('[data-testid="settings-saved"][data-saved="true"]').waitFor();
    await page.getByTestId('start').click();
    const error = page.getByTestId('train-error');
    await error.waitFor({ timeout: 30_000 });
    expect(await error.textContent()).toMatch(
      /^The GPU was lost.*Resume continues from the last checkpoint \(step 5\)/,
    );
    await screenshot(page, 'flow-device-lost');
    await error.getByRole('button', { name: 'Resume from checkpoint' }).click();
    await phase('done');
    await expect.poll(step).toBe(30);

    const sessionId = await openSessionId(page);
    expect((await ckptKeys()).filter((k) => k.startsWith(`ckpt:${sessionId}:`)).length).toBeGreaterThan(3);
    await page.getByTestId('tab-sessions').click();
    const row = page.locator(`[data-testid="session-row"][data-session="${sessionId}"]`);
    await row.getByTestId('delete-session').click();
    await row.getByTestId('confirm-delete').click();
    await expect.poll(() => row.count()).toBe(0);
    expect((await ckptKeys()).filter((k) => k.startsWith(`ckpt:${sessionId}:`))).toEqual([]);
    expect((await ckptKeys()).length).toBeGreaterThan(0); // the first session's checkpoints stay
  });

  it('offers a LoRA imported into a session that never trained to the Generate tab, after a reload too', async () => {
    const { page } = studio;
    await page.getByTestId('tab-train').click();
    await page.getByTestId('new-session').click();
    await expect.poll(() => page.getByTestId('photo-thumb').count(), { timeout: 30_000 }).toBe(0);
    await page.getByTestId('tab-generate').click();
    const useLora = page.getByTestId('gen-use-lora');
    expect(await useLora.isDisabled()).toBe(true);
    await page.getByTestId('tab-train').click();
    await page.locator('input[type="file"][accept=".safetensors"]').setInputFiles({
      name: 'someone-else.safetensors',
      mimeType: 'application/octet-stream',
      buffer: Buffer.from([0]), // the fake trainer stores any bytes
    });
    await expect
      .poll(() => page.getByTestId('notice').textContent(), { timeout: 30_000 })
      .toMatch(/LoRA imported/);
    await page.getByTestId('tab-generate').click();
    await expect.poll(() => useLora.isEnabled()).toBe(true);
    expect(await page.locator('.switch', { has: useLora }).textContent()).toMatch(
      /imported from a LoRA file/,
    );
    await page.reload();
    await page.getByTestId('tab-generate').click();
    await expect.poll(() => page.getByTestId('gen-use-lora').isEnabled(), { timeout: 30_000 }).toBe(true);
  });
  it('compares a LoRA² run with a fixed-rank one: table, charts, the same seeds side by side, the grid as PNG', async () => {
    const { page } = studio;
    // The first run's fixed-rank twin at the size its LoRA² adapter ended (the fake's ranks 4,5,6,7,8,4,5,6,7,8,4,5
    // on 12 equal layers: mean 5.75, so r = 6), ticked beside it for Compare.
    await page.getByTestId('tab-sessions').click();
    await expect.poll(() => page.getByTestId('session-row').count(), { timeout: 30_000 }).toBeGreaterThan(1);
    const first = page.locator('[data-testid="session-row"]:has(.phase.done)');
    const firstId = (await first.getAttribute('data-session'))!;
    await first.getByRole('button', { name: 'Open' }).click();
    await page.getByTestId('tab-train').click();
    await expect.poll(() => page.getByTestId('photo-thumb').count(), { timeout: 30_000 }).toBe(3);
    expect(await page.getByTestId('train-twin').textContent()).toBe('Fixed-rank twin (r=6)');
    await page.getByTestId('train-twin').click();
    await expect
      .poll(() => page.getByTestId('session-name').inputValue(), { timeout: 30_000 })
      .toMatch(/\(fixed r=6\)$/);
    await expect.poll(() => page.getByTestId('photo-thumb').count(), { timeout: 30_000 }).toBe(3);
    expect(await page.getByTestId('mode-fixed').isChecked()).toBe(true);
    expect(await page.getByTestId('setting-fixedRank').inputValue()).toBe('6');
    // It copied the prompt the first run trained with (the built-in one, which the model's example would replace
    // in a fresh session).
    expect(await page.getByTestId('setting-prompt').inputValue()).toBe('a photo of <v1> dog');
    await page.getByTestId('start').click();
    await phase('done');
    await expect.poll(step).toBe(30);
    const fixedId = await openSessionId(page);

    await page.getByTestId('tab-sessions').click();
    const pick = (id: string) =>
      page.locator(`[data-testid="session-row"][data-session="${id}"]`).getByTestId('compare-pick');
    // Already ticked by the twin button.
    const rows = page.getByTestId('compare-row');
    await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(2);
    expect([await pick(firstId).isChecked(), await pick(fixedId).isChecked()]).toEqual([true, true]);
    const cells = async (testId: string) => rows.getByTestId(testId).allTextContents();
    expect(await rows.locator('td:nth-child(2)').allTextContents()).toEqual(['LoRA² ≤64', 'fixed r=6']);
    // The fake fixed-rank run's loss sits 0.05 above the LoRA² one at every step (± the fake's periodic term
    // where the two histories hold different steps: the first run's reload can drop one).
    const [lossA, lossB] = (await cells('compare-loss')).map(Number);
    expect(lossB - lossA).toBeGreaterThan(0.035);
    expect(lossB - lossA).toBeLessThan(0.065);
    expect(await cells('compare-ranks')).toEqual(['4 / 5.8 / 8', '6 / 6.0 / 6']);
    // Equal size by construction: 69 and 72 rank units of 512 bytes.
    expect(await cells('compare-bytes')).toEqual([
      expect.stringMatching(/^35 KB/),
      expect.stringMatching(/^36 KB/),
    ]);
    expect(await page.getByTestId('compare-caveats').allTextContents()).toEqual([]); // same model, prompt, photos, steps
    for (const chart of ['compare-loss-chart', 'compare-rank-chart']) {
      const el = page.getByTestId(chart);
      expect([await el.getAttribute('data-series'), await el.getAttribute('data-points')]).toEqual([
        '2',
        '30',
      ]);
    }

    // The same prompt and seeds: the base model, then each session's LoRA.
    await page.getByTestId('compare-seeds').fill('1, 2');
    await page.getByTestId('compare-steps').fill('3');
    expect(await page.getByTestId('compare-render-hint').textContent()).toMatch(/2 seeds × 3 columns/);
    await page.getByTestId('compare-render').click();
    const grid = page.getByTestId('compare-grid');
    await expect.poll(() => grid.getByTestId('compare-cell').count(), { timeout: 30_000 }).toBe(6);
    expect(await grid.locator('thead th').allTextContents()).toEqual([
      '',
      'base model',
      expect.stringMatching(/^Session .*LoRA² ≤64 · step 30$/),
      expect.stringMatching(/\(fixed r=6\)fixed r=6 · step 30$/),
    ]);
    const pixels = await Promise.all(
      (await grid.getByTestId('compare-cell').all()).map((img) => imagePixels(img)),
    );
    const key = (p: { data: number[] }) => p.data.join(',');
    // Six different images: each column rendered with its own LoRA (or none), each row at its own seed.
    expect(new Set(pixels.map(key)).size).toBe(6);
    await screenshot(page, 'sessions-compare', SCREENSHOTS);

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('compare-download').click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^compare_.*_vs_.*_seeds-1-2\.png$/);
    const png = await decodePng(new Uint8Array(await readFile((await download.path())!)));
    // 3 columns × 2 rows of 48 px images, scaled 2× for viewing, 2 px gutters.
    expect([png.width, png.height]).toEqual([3 * 98, 2 * 98]);

    // A session that never trained has nothing to chart or render: the panel says so.
    const imported = page.locator('[data-testid="session-row"]:has(.phase.new)');
    await imported.getByTestId('compare-pick').check();
    await expect
      .poll(() => page.getByTestId('compare-caveats').textContent(), { timeout: 30_000 })
      .toMatch(/has no recorded training steps/);
    await imported.getByTestId('compare-pick').uncheck();
    await expect.poll(() => rows.count()).toBe(2);
  });
});
