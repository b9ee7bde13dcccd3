// The studio shell in real Chromium: the page loads, the worker's WebGPU self-test passes, adapter shown.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GPU_PROCESS_NICE, gpuProcessNices, launchStudio, screenshot, type Studio } from './support/browser';
import { MainThreadCpu, ownLongTasks, type LongTask } from './support/mainThread';

describe('studio shell in Chromium', () => {
  let studio: Studio;
  beforeAll(async () => {
    studio = await launchStudio(inject('baseURL'));
  });
  afterAll(async () => {
    await studio?.close();
  });

  it('shows the adapter and passes the compute self-test inside the worker', async () => {
    const { page } = studio;
    await page.goto('/');
    await expect(page.title()).resolves.toBe('LoRA² Studio');
    const name = page.getByTestId('adapter-name');
    await name.waitFor({ timeout: 60_000 }).catch((e) => {
      throw new Error(`${e}\npage logs:\n${studio.logs.join('\n')}`);
    });
    const adapter = await name.textContent();
    console.log(`[e2e] worker adapter: ${adapter}`);
    expect(adapter).toBeTruthy();
    const selftest = page.locator('[data-testid="selftest"]:not([data-ok="pending"])');
    await selftest.waitFor({ timeout: 60_000 });
    expect(await selftest.getAttribute('data-ok'), (await selftest.textContent()) ?? '').toBe('true');
    expect(await selftest.textContent()).toMatch(/in a worker/);
    await screenshot(page, 'shell');
  });

  it.runIf(process.platform === 'linux')(
    'runs the software GPU process below the page, as a hardware GPU would leave the CPU to it',
    async () => {
      // The self-test above started the GPU process; its threads are lowered within a second.
      await expect
        .poll(() => gpuProcessNices(studio.profileDir), { timeout: 10_000 })
        .toSatisfy((n: number[]) => n.length > 0 && n.every((v) => v === GPU_PROCESS_NICE));
    },
  );

  it.runIf(process.platform === 'linux')(
    "measures the CPU of the page's main thread behind a long task: a busy one counts, a starved one does not",
    async () => {
      const cpu = new MainThreadCpu(studio.profileDir);
      try {
        await new Promise((r) => setTimeout(r, 1200)); // a scan for the renderer, then samples
        // Two long tasks: one computing for 600 ms, one blocked in a synchronous request the test answers after
        // 300 ms (the thread waits without using the CPU, as a thread starved of a core would). On a busy
        // machine the computing one gets less than all of its 600 ms of CPU, but far more than the blocked one.
        await studio.page.route('**/__slow', async (route) => {
          await new Promise((r) => setTimeout(r, 300));
          await route.fulfill({ body: 'ok' });
        });
        const tasks = await studio.page.evaluate(async () => {
          const out: { start: number; ms: number }[] = [];
          const obs = new PerformanceObserver((l) =>
            l
              .getEntries()
              .forEach((e) => out.push({ start: performance.timeOrigin + e.startTime, ms: e.duration })),
          );
          obs.observe({ type: 'longtask' });
          await new Promise((r) => setTimeout(r, 100)); // the task that starts observing is not observed
          const t0 = performance.now();
          let x = 0;
          while (performance.now() - t0 < 600) x += Math.sqrt(x + 1);
          await new Promise((r) => setTimeout(r, 400));
          const xhr = new XMLHttpRequest();
          xhr.open('GET', '/__slow', false);
          xhr.send();
          await new Promise((r) => setTimeout(r, 400));
          obs.disconnect();
          if (!Number.isFinite(x))
            throw new Error('unreachable: keeps the busy loop from being optimized away');
          return out.map((t) => ({ ...t, ms: Math.round(t.ms) }));
        });
        await studio.page.unroute('**/__slow');
        expect(tasks.length, JSON.stringify(tasks)).toBe(2);
        const [busy, waiting] = await cpu.measure(tasks as LongTask[]);
        console.log(
          `[e2e] busy task ${busy.ms} ms, CPU ${busy.cpuMs} ms; waiting task ${waiting.ms} ms, CPU ${waiting.cpuMs} ms`,
        );
        expect(busy.cpuMs).toBeGreaterThanOrEqual(200);
        expect(waiting.cpuMs).toBeLessThan(60);
        expect(ownLongTasks([busy, waiting], 150)).toEqual([busy]);
      } finally {
        cpu.stop();
      }
    },
  );

  it('reports a broken shader as the typed compile error with the compiler message', async () => {
    const err = await studio.page.evaluate(async () => {
      const api = (
        window as unknown as { __lora2?: { trainer: () => { compileCheck(c: string): Promise<unknown> } } }
      ).__lora2;
      return api?.trainer().compileCheck('@compute @workgroup_size(1)\nfn main() {\n  let y = nope;\n}\n');
    });
    expect(err).toMatchObject({ kind: 'wgsl-compile', name: 'WgslCompileError' });
    expect((err as { message: string }).message).toMatch(/nope/);
    expect((err as { message: string }).message).toMatch(/line 3/);
  });

  it('surfaces a destroyed device as the typed device-lost error', async () => {
    const err = await studio.page.evaluate(async () => {
      const api = (window as unknown as { __lora2?: { trainer: () => { loseDevice(): Promise<unknown> } } })
        .__lora2;
      return api?.trainer().loseDevice();
    });
    expect(err).toMatchObject({ kind: 'device-lost', reason: 'destroyed' });
  });

  it('explains a browser without WebGPU instead of showing a blank page', async () => {
    const page = await studio.context.newPage();
    await page.addInitScript(() => {
      // A browser without WebGPU: hide navigator.gpu in the page and in workers it starts.
      Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
      const OrigWorker = window.Worker;
      window.Worker = class extends OrigWorker {
        constructor(url: string | URL, opts?: WorkerOptions) {
          // A static import keeps the worker's message queue closed until the real module has loaded.
          const src = `import ${JSON.stringify(String(new URL(url, location.href)))};Object.defineProperty(WorkerNavigator.prototype,'gpu',{get:()=>undefined,configurable:true});`;
          super(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })), opts);
        }
      } as typeof Worker;
    });
    await page.goto('/');
    const alert = page.getByTestId('gpu-error');
    await alert.waitFor({ timeout: 30_000 });
    expect(await alert.textContent()).toMatch(/Chrome or Edge/);
    await screenshot(page, 'no-webgpu');
    await page.close();
  });
});
