// Photos in Chromium: real PNG/JPEG/WebP files dropped and picked, rejected files each get a message,
// EXIF orientation is applied, thumbnails and the crop preview appear, remove works, captions (kohya's .txt
// files and typed ones) are kept.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { launchStudio, screenshot, type Studio } from './support/browser';
import {
  blobPng,
  dropFiles,
  emojiPng,
  encodePng,
  dropFolder,
  renderInPage,
  withExifOrientation,
  type TestFile,
} from './support/images';
import { modelLoaded, openStudio, SCREENSHOTS, trainMessage } from './support/studio';

describe('studio photos', () => {
  let studio: Studio;
  beforeAll(async () => {
    studio = await launchStudio(inject('baseURL'));
  });
  afterAll(async () => {
    await studio?.close();
  });

  it('accepts JPEG/PNG/WebP, rejects the rest with a message per file, respects EXIF orientation', async () => {
    const page = await openStudio(studio);
    const jpeg = await renderInPage(page, 160, 96, 'image/jpeg');
    const webp = await renderInPage(page, 120, 120, 'image/webp');
    const files: TestFile[] = [
      emojiPng('1f436'),
      emojiPng('1f415'),
      { name: 'garden.png', mimeType: 'image/png', buffer: blobPng(200, 150, 140) },
      { name: 'rotated.jpg', mimeType: 'image/jpeg', buffer: withExifOrientation(jpeg, 6) },
      { name: 'square.webp', mimeType: 'image/webp', buffer: webp },
      { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('these are not pixels') },
      // kohya's caption file for 1f436.png: that photo's own prompt.
      { name: '1f436.txt', mimeType: 'text/plain', buffer: Buffer.from('<v1> dog face,\n  on grass\n') },
      { name: 'tiny.png', mimeType: 'image/png', buffer: encodePng(20, 20, () => [200, 0, 0, 255]) },
      {
        name: 'broken.png',
        mimeType: 'image/png',
        buffer: Buffer.concat([blobPng(100, 100, 10).subarray(0, 60), Buffer.alloc(40, 7)]),
      },
      {
        name: 'anim.gif',
        mimeType: 'image/gif',
        buffer: Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'binary'),
      },
    ];
    await dropFiles(page, '[data-testid="dropzone"]', files);

    const thumbs = page.getByTestId('photo-thumb');
    await expect.poll(() => thumbs.count(), { timeout: 30_000 }).toBe(5);
    await page.locator('.dropzone strong', { hasText: 'Drop photos here' }).waitFor();
    const notes = await page.getByTestId('photo-note').allTextContents();
    expect(notes).toHaveLength(4);
    expect(notes.join('\n')).toMatch(/notes\.txt is not an image/);
    expect(notes.join('\n')).toMatch(/tiny\.png is 20×20 px; photos need at least 64 px/);
    expect(notes.join('\n')).toMatch(/broken\.png could not be decoded/);
    expect(notes.join('\n')).toMatch(/anim\.gif is a GIF image/);

    // EXIF orientation 6 (rotate 90° clockwise): a 160×96 frame is a 96×160 photo.
    const rotated = page.locator('[data-testid="photo-thumb"][title^="rotated.jpg"]');
    expect(await rotated.getAttribute('title')).toMatch(/96×160/);
    expect(
      await page.locator('[data-testid="photo-thumb"][title^="square.webp"]').getAttribute('title'),
    ).toMatch(/120×120/);

    // The crop preview of the rotated photo: the center square at the model's resolution.
    await rotated.locator('img').click();
    const caption = page.getByTestId('crop-caption');
    await expect.poll(() => caption.textContent()).toMatch(/^96×160 → (\d+)×\1$/);
    // The red marker was the frame's top-left corner; after rotation it is top-right, outside the center
    // square, so the crop shows no red at its top-left.
    const cropPixel = (x: number, y: number) =>
      page.evaluate(
        ([x, y]) => {
          const c = document.querySelector<HTMLCanvasElement>('[data-testid="crop-preview"] canvas')!;
          return [...c.getContext('2d')!.getImageData(x, y, 1, 1).data];
        },
        [x, y],
      );
    const topLeft = await cropPixel(1, 1);
    expect(topLeft[0] > 200 && topLeft[1] < 80, `top-left pixel ${topLeft}`).toBe(false);
    // The crop box sits on the photo: 96×160 shows a centered square as wide as the photo.
    const [img, box] = await Promise.all(
      ['.crop-source img', '.crop-box'].map((s) =>
        page.locator(`[data-testid="crop-preview"] ${s}`).boundingBox(),
      ),
    );
    expect(Math.abs(box!.x - img!.x), 'box left = photo left').toBeLessThan(1.5);
    expect(Math.abs(box!.width - img!.width), 'box width = photo width').toBeLessThan(1.5);
    expect(Math.abs(box!.y + box!.height / 2 - (img!.y + img!.height / 2)), 'box centred').toBeLessThan(1.5);
    expect(img!.height / img!.width).toBeCloseTo(160 / 96, 1);

    // A transparent PNG (the emoji) trains over white: its crop's corner is white, not the black it stores.
    await page.locator('[data-testid="photo-thumb"][title^="1f436.png"] img').click();
    // Its caption came from 1f436.txt, line break and all folded into one line; it is the only one captioned.
    expect(await page.getByTestId('photo-caption').inputValue()).toBe('<v1> dog face, on grass');
    expect(await page.getByTestId('photo-captioned').count()).toBe(1);
    await expect.poll(() => cropPixel(0, 0)).toEqual([255, 255, 255, 255]);
    // Its thumbnail and the crop's source show the transparent parts as a checkerboard, not the dark page.
    for (const sel of ['[data-testid="photo-thumb"][title^="1f436.png"] img', '.crop-source img']) {
      const bg = await page.locator(sel).evaluate((e) => getComputedStyle(e).backgroundImage);
      expect(bg, sel).toMatch(/repeating-conic-gradient/);
    }
    expect(await page.getByTestId('photo-count').textContent()).toBe('5 photos.');
    await screenshot(page, 'train-photos', SCREENSHOTS);
  });

  it('adds through the file picker, refuses duplicates, and removes', async () => {
    const { page } = studio;
    const thumbs = page.getByTestId('photo-thumb');
    await page.getByTestId('photo-input').setInputFiles([emojiPng('1f408'), emojiPng('1f436')]);
    await expect.poll(() => thumbs.count(), { timeout: 30_000 }).toBe(6);
    expect(await page.getByTestId('photo-note').allTextContents()).toEqual([
      expect.stringMatching(/1f436\.png is already in this session/),
    ]);
    await page.getByRole('button', { name: 'Remove 1f408.png' }).click();
    await expect.poll(() => thumbs.count()).toBe(5);
    expect(await page.locator('[data-testid="photo-thumb"][title^="1f408.png"]').count()).toBe(0);
  });

  it('captions: a .txt for a photo already there, typed ones, refused without an identifier, kept on an instant reload', async () => {
    const { page } = studio;
    const thumb = (name: string) => page.locator(`[data-testid="photo-thumb"][title^="${name}"] img`);
    const field = page.getByTestId('photo-caption');
    const hint = page.getByTestId('photo-caption-hint');
    await dropFiles(page, '[data-testid="dropzone"]', [
      { name: '1F415.TXT', mimeType: 'text/plain', buffer: Buffer.from('<v1> dog, walking') },
      // The wrong file under a photo's name: named, not read.
      { name: 'square.txt', mimeType: 'text/plain', buffer: Buffer.alloc(70 * 1024, 'a') },
    ]);
    await expect.poll(() => page.getByTestId('photo-captioned').count(), { timeout: 30_000 }).toBe(2);
    // (The notes of a drop replace the last ones once its files are read: poll.)
    await expect
      .poll(() => page.getByTestId('photo-note').allTextContents())
      .toEqual([expect.stringMatching(/^square\.txt is 70 KB: too large for a caption/)]);
    await thumb('1f415.png').click();
    expect(await field.inputValue()).toBe('<v1> dog, walking');

    // A caption needs an identifier, as the prompt does: the field says so and training refuses to start.
    // (Thumbnails are buttons: the keyboard selects one too.)
    await page.getByRole('button', { name: 'Select square.webp' }).focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByTestId('crop-caption').textContent()).toMatch(/^120×120 → /);
    expect(await field.inputValue()).toBe('');
    expect(await hint.textContent()).toMatch(/Empty: trains with the session's prompt/);
    await field.fill('a dog in a box');
    expect(await hint.textContent()).toMatch(/^The caption needs an identifier token/);
    await modelLoaded(page);
    await page.getByTestId('start').click();
    await expect
      .poll(() => trainMessage(page))
      .toMatch(/^square\.webp: The caption needs an identifier token/);
    await field.fill('<v1> dog in a box');
    await field.press('Tab'); // stored at once when the field loses focus
    expect(await hint.textContent()).toBe('This photo trains with its own caption.');
    // Emptied: back to the session's prompt.
    await thumb('1f415.png').click();
    await field.fill('');
    await field.press('Tab');
    await expect.poll(() => page.getByTestId('photo-captioned').count()).toBe(2);
    await page.locator('[data-testid="photo-caption"][data-saved="true"]').waitFor({ timeout: 10_000 });
    // Typed and reloaded at once, inside the field's 400 ms pause: pagehide starts the write.
    await thumb('1f436.png').click();
    await field.fill('<v1> dog face, on grass, with a ball');
    expect(await field.getAttribute('data-saved')).toBe('false');
    // A setting changed just before the reload too (its debounce has not fired either).
    await page.getByTestId('setting-steps').fill('123');
    expect(await page.getByTestId('settings-saved').getAttribute('data-saved')).toBe('false');

    await page.reload();
    await expect.poll(() => page.getByTestId('photo-thumb').count(), { timeout: 30_000 }).toBe(5);
    const captions: Record<string, string> = {};
    for (const name of ['1f436.png', '1f415.png', 'square.webp']) {
      await thumb(name).click();
      captions[name] = await field.inputValue();
    }
    expect(captions).toEqual({
      '1f436.png': '<v1> dog face, on grass, with a ball',
      '1f415.png': '',
      'square.webp': '<v1> dog in a box',
    });
    expect(await page.getByTestId('setting-steps').inputValue()).toBe('123');
  });
  it('takes a kohya dataset folder dropped whole: photos, their captions, sub-folders; other files left out', async () => {
    const { page } = studio;
    await page.getByTestId('new-session').click();
    await expect.poll(() => page.getByTestId('photo-thumb').count(), { timeout: 30_000 }).toBe(0);
    const text = (name: string, s: string): TestFile => ({
      name,
      mimeType: 'text/plain',
      buffer: Buffer.from(s),
    });
    await dropFolder(page, '[data-testid="dropzone"]', {
      name: '10_dog',
      children: [
        emojiPng('1f436'),
        text('1f436.txt', '<v1> dog face, smiling'),
        text('dataset.toml', '[general]'),
        text('.DS_Store', ''),
        {
          name: 'more',
          children: [emojiPng('1f415'), text('1f415.txt', '<v1> dog, walking'), emojiPng('1f429')],
        },
      ],
    });
    await expect.poll(() => page.getByTestId('photo-thumb').count(), { timeout: 30_000 }).toBe(3);
    expect(await page.getByTestId('photo-captioned').count()).toBe(2);
    expect(await page.getByTestId('photo-note').allTextContents()).toEqual([
      expect.stringMatching(/^Left out 2 files of the folder .*: \.DS_Store, dataset\.toml\./),
    ]);
    await page.locator('[data-testid="photo-thumb"][title^="1f415.png"] img').click();
    expect(await page.getByTestId('photo-caption').inputValue()).toBe('<v1> dog, walking');
  });
});
