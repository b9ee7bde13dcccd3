// The studio shell in real Chromium: the page loads, the worker's WebGPU self-test passes, adapter shown.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GPU_PROCESS_NICE, gpuProcessNices, launchStudio, screenshot, type Studio } from './support/browser';

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
