// Launches Debian's Chromium through playwright-core with WebGPU enabled (SwiftShader when there is no GPU).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { cpuTicks, procStat, threadNice } from '../../scripts/thread-nice';

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
  opts: {
    profileDir?: string;
    extraFlags?: string[];
    /** 'block' keeps the service worker out, so context.route() sees every fetch (the workers' too). */
    serviceWorkers?: 'allow' | 'block';
  } = {},
): Promise<Studio> {
  const profileDir = opts.profileDir ?? mkdtempSync(join(tmpdir(), 'lora2-e2e-'));
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_FLAGS, ...(opts.extraFlags ?? [])],
    baseURL,
    viewport: { width: 1280, height: 900 },
    serviceWorkers: opts.serviceWorkers ?? 'allow',
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const logs: string[] = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  const yielding = yieldGpuProcess(profileDir);
  return {
    context,
    page,
    profileDir,
    logs,
    close: () => {
      clearInterval(yielding);
      return context.close();
    },
  };
}

/** Nice value given to the GPU process of a test browser (see yieldGpuProcess). */
export const GPU_PROCESS_NICE = 10;

/** Ids of every process on the machine ([] without /proc). */
function procPids(): string[] {
  try {
    return readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
}

/**
 * Ids of the test browser's processes of one Chromium `--type` (gpu-process, renderer, …), found by its
 * --user-data-dir; `exclude` drops those with any of these flags (Linux; [] without /proc). Chromium rewrites
 * a child's /proc cmdline as one space-separated string, hence the split on spaces too.
 */
export function browserProcesses(profileDir: string, type: string, exclude: string[] = []): string[] {
  const out: string[] = [];
  for (const pid of procPids()) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/);
      if (!args.includes(`--type=${type}`) || !args.includes(`--user-data-dir=${profileDir}`)) continue;
      if (!exclude.some((flag) => args.includes(flag))) out.push(pid);
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/** The threads (/proc/PID/task/TID paths) of the test browser's GPU process ([] when it has none). */
function gpuProcessThreads(profileDir: string): string[] {
  const out: string[] = [];
  for (const pid of browserProcesses(profileDir, 'gpu-process')) {
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) out.push(`/proc/${pid}/task/${tid}`);
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/** Nice values of every thread of the browser's GPU process ([] when it has none or no /proc). */
export function gpuProcessNices(profileDir: string): number[] {
  const out: number[] = [];
  for (const task of gpuProcessThreads(profileDir)) {
    const nice = threadNice(task);
    if (nice !== undefined) out.push(nice);
  }
  return out;
}

/**
 * Without a GPU, Chromium's "GPU" is SwiftShader: the GPU process compiles and runs every shader on the CPU,
 * and Chromium raises that process's main thread to nice -8. On a 2-core machine it then takes the CPU from
 * the page's main thread, and a 30 ms task of ours is measured as a 300 ms long task. On a real GPU that
 * work is not on the CPU at all. So the tests lower every thread of their own browser's GPU process to nice
 * GPU_PROCESS_NICE, checking each second for threads not at it: the page's main thread (nice 0) then runs when it
 * has work, as it would beside a hardware GPU, and the GPU work still gets all the CPU the page does not use.
 * Linux only; elsewhere, or without /proc, it does nothing.
 */
function yieldGpuProcess(profileDir: string): ReturnType<typeof setInterval> | undefined {
  if (process.platform !== 'linux') return undefined;
  // Each pass reads every thread's nice value instead of remembering which were lowered: Chromium can raise a
  // thread's priority again after we lowered it, and with pid_max 32768 a thread id can be reused.
  const pass = () => {
    for (const task of gpuProcessThreads(profileDir)) {
      const nice = threadNice(task);
      if (nice === undefined || nice === GPU_PROCESS_NICE) continue;
      try {
        setPriority(Number(task.slice(task.lastIndexOf('/') + 1)), GPU_PROCESS_NICE);
      } catch {
        // the thread ended meanwhile
      }
    }
  };
  pass();
  const timer = setInterval(pass, 1000);
  timer.unref();
  return timer;
}

/** CPU clock ticks (user + system) used so far by every Chromium process on the machine (Linux; 0 elsewhere). */
function chromiumTicks(): number {
  let total = 0;
  for (const pid of procPids()) {
    if (/^(chromium|chrome)/.test(procStat(`/proc/${pid}`)?.comm ?? '')) total += cpuTicks(`/proc/${pid}`);
  }
  return total;
}

/**
 * Waits until the test browser has been nearly idle (under `busy` cores' worth of CPU) for a whole second,
 * at most `maxMs`; returns how long it waited. After the page has loaded a model, the browser keeps 2 cores busy
 * for another 4–5 s in background threads (ThreadPoolForeground, nice 0; most likely V8 optimizing onnxruntime's
 * WebAssembly), and a main-thread timing taken then measures that work, not the page's.
 */
export async function waitForQuietBrowser(maxMs = 30_000, busy = 0.25): Promise<number> {
  const t0 = performance.now();
  if (process.platform !== 'linux') return 0;
  let quiet = 0;
  let last = chromiumTicks();
  while (performance.now() - t0 < maxMs && quiet < 2) {
    await new Promise((r) => setTimeout(r, 500));
    const now = chromiumTicks();
    quiet = ((now - last) * 10) / 500 < busy ? quiet + 1 : 0;
    last = now;
  }
  return performance.now() - t0;
}

export const ARTIFACTS = 'test-results/e2e';

export async function screenshot(page: Page, name: string, dir = ARTIFACTS): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
