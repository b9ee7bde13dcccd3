// Launches Debian's Chromium through playwright-core with WebGPU enabled (SwiftShader when there is no GPU).
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.LORA2_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Studio {
  context: BrowserContext;
  page: Page;
  profileDir: string;
  /** Messages the page and its workers printed, for failure diagnostics. */
  logs: string[];
  close(): Promise<void>;
}

/** A persistent profile, so IndexedDB/OPFS survive a relaunch when the same dir is passed again. */
export async function launchStudio(
  baseURL: string,
  opts: { profileDir?: string; extraFlags?: string[] } = {},
): Promise<Studio> {
  const profileDir = opts.profileDir ?? mkdtempSync(join(tmpdir(), 'lora2-e2e-'));
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_FLAGS, ...(opts.extraFlags ?? [])],
    baseURL,
    viewport: { width: 1280, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const logs: string[] = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  return { context, page, profileDir, logs, close: () => context.close() };
}

export const ARTIFACTS = 'test-results/e2e';

export async function screenshot(page: Page, name: string, dir = ARTIFACTS): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
