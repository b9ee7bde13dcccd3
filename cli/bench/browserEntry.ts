// The kernel benchmark as a browser page (bundled and served by cli/bench-kernels-chromium.ts): runs
// runKernelBench on the page's WebGPU adapter beside onnxruntime-web's WebGPU EP, and publishes progress and
// the measured rows on `window.__bench` for the driver to read. Arguments come from `?args=--sizes%20256`.
import * as ort from 'onnxruntime-web/webgpu';
import { acquireBrowserGpu } from '../../src/gpu/browser';
import { adapterName } from '../../src/gpu/device';
import { describeSubnormals, probeSubnormals } from '../../src/gpu/subnormals';
import { MATMUL_TILING } from '../../src/kernels/matmul';
import { ortLabel, parseKernelBenchArgs, runKernelBench, type Row } from './kernels';
import { createOrtRunnerWith, type OrtRunner } from './ortRunner';

export interface BrowserBenchState {
  done: boolean;
  log: string;
  error?: string;
  result?: {
    rows: Row[];
    adapter: string;
    software: boolean;
    /** What the adapter does with subnormal floats (describeSubnormals). */
    subnormals: string;
    ortLabel: string;
    ortFallback?: string;
    userAgent: string;
    tiling: string;
    reps: number;
  };
}

const state: BrowserBenchState = { done: false, log: '' };
(globalThis as unknown as { __bench: BrowserBenchState }).__bench = state;
const pre = document.createElement('pre');
document.body.append(pre);
const log = (s: string) => {
  state.log += s;
  pre.textContent = state.log;
};

async function main(): Promise<void> {
  const args = new URLSearchParams(location.search).get('args') ?? '';
  const opts = parseKernelBenchArgs(args.split(' ').filter(Boolean));
  const gpu = await acquireBrowserGpu({ label: 'bench-kernels' });
  let runner: OrtRunner | undefined;
  if (opts.ort) {
    log('loading onnxruntime-web …\n');
    runner = await createOrtRunnerWith(ort, new URL('/ort/', location.href).toString());
    if (runner.fallbackReason) log(`ORT WebGPU EP unavailable (${runner.fallbackReason}); using WASM\n`);
  }
  const rows = await runKernelBench(gpu, runner, opts, log);
  state.result = {
    rows,
    adapter: adapterName(gpu.adapter),
    software: gpu.adapter.isFallback,
    subnormals: describeSubnormals(await probeSubnormals(gpu)),
    ortLabel: ortLabel(runner),
    ortFallback: runner?.fallbackReason,
    userAgent: navigator.userAgent,
    tiling: JSON.stringify(MATMUL_TILING),
    reps: opts.reps,
  };
  gpu.destroy();
}

main()
  .catch((e) => {
    state.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    log(`\nfailed: ${state.error}\n`);
  })
  .finally(() => (state.done = true));
