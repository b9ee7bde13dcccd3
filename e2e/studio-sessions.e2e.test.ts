// Sessions in Chromium: photos and settings survive closing the browser (same profile), the sessions list
// shows sizes, a session exports to one file and imports again, delete removes it.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { launchStudio, screenshot, type Studio } from './support/browser';
import { dropFiles, emojiPng } from './support/images';
import { openStudio, SCREENSHOTS, storeClassSet, storedClassSets } from './support/studio';

describe('studio sessions', () => {
  const profileDir = mkdtempSync(join(tmpdir(), 'lora2-e2e-sessions-'));
  let studio: Studio | undefined;
  afterAll(async () => {
    await studio?.close();
  });

  it('keeps photos and settings across a browser restart', async () => {
    studio = await launchStudio(inject('baseURL'), { profileDir });
    let page = await openStudio(studio);
    await dropFiles(page, '[data-testid="dropzone"]', [
      emojiPng('1f436'),
      emojiPng('1f415'),
      emojiPng('1f429'),
    ]);
    await expect.poll(() => page.getByTestId('photo-thumb').count(), { timeout: 30_000 }).toBe(3);
    await page.getByTestId('setting-prompt').fill('a photo of <v1> corgi');
    await page.getByTestId('setting-steps').fill('250');
    await page.getByTestId('setting-priorSigma').fill('0.15');
    // σ below the cliff is allowed but warned about.
    expect(await page.getByTestId('issue-priorSigma').textContent()).toMatch(/collapse/);
    await page.getByTestId('setting-prompt').fill('a photo of corgi');
    expect(await page.getByTestId('issue-prompt').textContent()).toMatch(/identifier token/);
    await page.getByTestId('setting-prompt').fill('a photo of <v1> corgi');
    await page.locator('summary', { hasText: 'Advanced' }).click();
    await page.getByTestId('setting-layers').selectOption('attention+conv');
    await page.getByTestId('session-name').fill('Corgi');
    await page.getByTestId('session-name').press('Enter');
    await page.locator('[data-testid="settings-saved"][data-saved="true"]').waitFor();
    await studio.close();

    studio = await launchStudio(inject('baseURL'), { profileDir });
    page = await openStudio(studio);
    await expect.poll(() => page.getByTestId('photo-thumb').count(), { timeout: 30_000 }).toBe(3);
    expect(await page.getByTestId('setting-prompt').inputValue()).toBe('a photo of <v1> corgi');
    expect(await page.getByTestId('setting-steps').inputValue()).toBe('250');
    expect(await page.getByTestId('setting-priorSigma').inputValue()).toBe('0.15');
    await page.locator('summary', { hasText: 'Advanced' }).click();
    expect(await page.getByTestId('setting-layers').inputValue()).toBe('attention+conv');
    expect(await page.getByTestId('session-name').inputValue()).toBe('Corgi');
    // The fixed-rank switch persists too.
    await page.getByTestId('mode-switch').click();
    await page.locator('[data-testid="settings-saved"][data-saved="true"]').waitFor();
    await page.reload();
    await page.getByTestId('photo-thumb').first().waitFor();
    expect(await page.getByTestId('mode-fixed').isChecked()).toBe(true);
    await page.getByTestId('mode-switch').click();
  });

  it('lists sessions with sizes, exports and imports one, deletes', async () => {
    const page = studio!.page;
    await page.getByTestId('tab-sessions').click();
    const rows = page.getByTestId('session-row');
    await expect.poll(() => rows.count()).toBe(1);
    const photoBytes = ['1f436', '1f415', '1f429'].reduce((a, c) => a + emojiPng(c).buffer.length, 0);
    await expect.poll(() => rows.first().getByTestId('session-bytes').textContent()).not.toBe('…');
    const sizeText = (await rows.first().getByTestId('session-bytes').textContent())!;
    const kb = Number(sizeText.replace(/ KB$/, ''));
    expect(kb * 1024, sizeText).toBeGreaterThan(photoBytes);

    // Export the session file, then import it: the id is taken, so it arrives as a copy.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      rows.first().getByRole('button', { name: 'Export' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('Corgi.lora2session');
    const saved = join(profileDir, 'export.lora2session');
    await download.saveAs(saved);
    expect(readFileSync(saved).subarray(0, 8).toString('latin1')).toBe('LORA2SES');
    await page.getByTestId('session-import-input').setInputFiles(saved);
    await expect.poll(() => rows.count()).toBe(2);
    expect(await rows.allTextContents()).toEqual(
      expect.arrayContaining([expect.stringMatching(/^Corgi \(imported\)/)]),
    );
    await page.getByTestId('new-session').click();
    await page.getByTestId('tab-sessions').click();
    await expect.poll(() => rows.count()).toBe(3);
    await screenshot(page, 'sessions', SCREENSHOTS);

    // Open the imported copy: its photos came along.
    const copy = rows.filter({ hasText: 'Corgi (imported)' });
    await copy.getByRole('button', { name: 'Open' }).click();
    await expect.poll(() => page.getByTestId('photo-thumb').count(), { timeout: 30_000 }).toBe(3);
    expect(await page.getByTestId('setting-steps').inputValue()).toBe('250');

    await page.getByTestId('tab-sessions').click();
    const original = rows.filter({ hasText: /^Corgi(?! \(imported\))/ });
    await original.getByTestId('delete-session').click();
    await original.getByTestId('confirm-delete').click();
    await expect.poll(() => rows.count()).toBe(2);
    expect(await rows.allTextContents()).not.toEqual(
      expect.arrayContaining([expect.stringMatching(/^Corgi(?! \(imported\))/)]),
    );
  });

  it('lists cached class images apart from sessions and deletes them', async () => {
    const page = studio!.page;
    const robot = 'class:["/models/emoji-tiny/","robot",3,1000,20,4]';
    const cat = 'class:["/models/emoji-tiny/","cat",1,1000,20,4]';
    await storeClassSet(page, robot, 3, 32);
    await storeClassSet(page, cat, 1, 32);
    await page.getByTestId('tab-train').click();
    await page.getByTestId('tab-sessions').click();
    const sets = page.getByTestId('class-set-row');
    await expect.poll(() => sets.count()).toBe(2);
    // Largest first, with the set's images drawn.
    expect(await sets.first().textContent()).toMatch(/^robot.*emoji-tiny/);
    expect(await sets.first().locator('canvas').count()).toBe(3);
    expect(await page.getByTestId('storage-usage').textContent()).toMatch(/class images \d+(\.\d+)? KB/);
    const sessionsBefore = await page.getByTestId('session-row').count();

    await sets.filter({ hasText: 'cat' }).getByTestId('delete-class-set').click();
    await expect.poll(() => sets.count()).toBe(1);
    expect((await storedClassSets(page)).map((s) => s.key)).toEqual([robot]);
    await page.getByTestId('clear-class-sets').click();
    await page.getByTestId('class-sets').waitFor({ state: 'detached' });
    expect(await storedClassSets(page)).toEqual([]);
    expect(await page.getByTestId('session-row').count()).toBe(sessionsBefore);
  });

  it('shows the Generate view and says what is missing until the trainer lands', async () => {
    const page = studio!.page;
    await page.getByTestId('tab-generate').click();
    await page.getByTestId('generate-view').waitFor();
    const caps = await page.evaluate(() =>
      (window as unknown as { __lora2: { trainer: () => { capabilities(): Promise<string[]> } } }).__lora2
        .trainer()
        .capabilities(),
    );
    if (!caps.includes('generate')) {
      expect(await page.getByTestId('generate-unavailable').textContent()).toMatch(/not available yet/);
      expect(await page.getByTestId('generate').isDisabled()).toBe(true);
    }
    await screenshot(page, 'generate', SCREENSHOTS);
  });
});
