// Helpers shared by the studio e2e tests: open the studio and wait for it, where screenshots for the README go.
import type { Page } from 'playwright-core';
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

/** The worker's capability list (which trainer methods this build has). */
export function capabilities(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    (window as unknown as { __lora2: { trainer: () => { capabilities(): Promise<string[]> } } }).__lora2
      .trainer()
      .capabilities(),
  );
}
