// Helpers shared by the studio e2e tests: open the studio and wait for it, where screenshots for the README go.
import type { Locator, Page } from 'playwright-core';
import type { Studio } from './browser';

export const SCREENSHOTS = 'docs/screenshots';

/** Loads the studio and waits until the session is open (the photo panel is ready for files). */
export async function openStudio(studio: Studio, path = '/'): Promise<Page> {
  const { page } = studio;
  await page.goto(path);
  await page
    .waitForFunction(
      () =>
        (
          window as unknown as { __lora2?: { studio: { getState(): { session?: unknown } } } }
        ).__lora2?.studio.getState().session,
      undefined,
      { timeout: 30_000 },
    )
    .catch((e) => {
      throw new Error(`${e}\npage logs:\n${studio.logs.join('\n')}`);
    });
  return page;
}

/** The id of the session open in the studio. */
export function openSessionId(page: Page): Promise<string> {
  return page.evaluate(
    () =>
      (
        window as unknown as { __lora2: { studio: { getState(): { session: { id: string } } } } }
      ).__lora2.studio.getState().session.id,
  );
}

/** The worker's capability list (which trainer methods this build has). */
export function capabilities(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    (window as unknown as { __lora2: { trainer: () => { capabilities(): Promise<string[]> } } }).__lora2
      .trainer()
      .capabilities(),
  );
}

/** The studio's class-image sets in IndexedDB (`class:<spec>` keys): key, image count, first image's width. */
export function storedClassSets(page: Page): Promise<{ key: string; images: number; width: number }[]> {
  return page.evaluate(
    () =>
      new Promise<{ key: string; images: number; width: number }[]>((resolve, reject) => {
        const open = indexedDB.open('lora2-studio');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const tx = open.result.transaction('kv');
          const range = IDBKeyRange.bound('class:', 'class:\uffff');
          const all = tx.objectStore('kv').getAll(range);
          const keys = tx.objectStore('kv').getAllKeys(range);
          tx.oncomplete = () => {
            open.result.close();
            resolve(
              (all.result as { width: number }[][]).map((imgs, i) => ({
                key: String(keys.result[i]),
                images: imgs.length,
                width: imgs[0]?.width ?? 0,
              })),
            );
          };
        };
      }),
  );
}

/** Writes `count` flat-colored size×size images under `key` in the studio's IndexedDB, as the worker would. */
export function storeClassSet(page: Page, key: string, count: number, size: number): Promise<void> {
  return page.evaluate(
    ([key, count, size]) =>
      new Promise<void>((resolve, reject) => {
        const open = indexedDB.open('lora2-studio');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const tx = open.result.transaction('kv', 'readwrite');
          const images = Array.from({ length: count }, (_, i) => ({
            width: size,
            height: size,
            data: new Uint8ClampedArray(size * size * 4).fill(60 + 60 * i),
          }));
          tx.objectStore('kv').put(images, key);
          tx.oncomplete = () => {
            open.result.close();
            resolve();
          };
          tx.onerror = () => reject(tx.error);
        };
      }),
    [key, count, size] as const,
  );
}

/** The n-th image of the Generate tab's gallery (newest first), decoded in the page: size and RGBA bytes. */
export function galleryImage(
  page: Page,
  n: number,
): Promise<{ width: number; height: number; data: number[] }> {
  return imagePixels(page.getByTestId('gallery-item').nth(n).locator('img'));
}

/** The pixels of an <img> on the page, at its own size. */
export function imagePixels(img: Locator): Promise<{ width: number; height: number; data: number[] }> {
  return img.evaluate(async (el: HTMLImageElement) => {
    const bitmap = await createImageBitmap(await (await fetch(el.src)).blob());
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext('2d')!;
    ctx.drawImage(bitmap, 0, 0);
    const data = Array.from(ctx.getImageData(0, 0, bitmap.width, bitmap.height).data);
    return { width: bitmap.width, height: bitmap.height, data };
  });
}

/** The Train tab's message line now ('' while there is none): poll it with expect.poll. */
export function trainMessage(page: Page): Promise<string> {
  return page
    .getByTestId('train-message')
    .textContent({ timeout: 1000 })
    .then((t) => t ?? '')
    .catch(() => '');
}

/**
 * Starts recording every message the Train tab shows, in order, from the studio's store (a poll of the DOM misses
 * one that lasts less than its interval: on a tiny model "Encoding photos…: 3 of 3" gives way to the first step's
 * message within milliseconds). Read them with `trainMessagesSeen`; a reload ends the recording.
 */
export function recordTrainMessages(page: Page): Promise<void> {
  return page.evaluate(() => {
    type Store = {
      getState(): { train: { message?: string } };
      subscribe(f: (s: { train: { message?: string } }) => void): void;
    };
    const w = window as unknown as { __lora2: { studio: Store }; __trainMessages?: string[] };
    const seen: string[] = (w.__trainMessages = []);
    const note = (m: string | undefined) => {
      if (m && seen[seen.length - 1] !== m) seen.push(m);
    };
    note(w.__lora2.studio.getState().train.message);
    w.__lora2.studio.subscribe((s) => note(s.train.message));
  });
}

/** The Train tab's messages since `recordTrainMessages`, oldest first. */
export function trainMessagesSeen(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __trainMessages?: string[] }).__trainMessages ?? []);
}

/** Waits for the model to load, failing at once (with the studio's message) when it cannot. */
export async function modelLoaded(page: Page): Promise<void> {
  const chip = page.locator('[data-testid="model-chip"]:is([data-phase="ready"], [data-phase="error"])');
  await chip.waitFor({ timeout: 120_000 });
  if ((await chip.getAttribute('data-phase')) !== 'ready')
    throw new Error(`the model did not load: ${await page.getByTestId('model-error').textContent()}`);
}
