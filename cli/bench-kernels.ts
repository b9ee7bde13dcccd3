// Kernel benchmark in Node on Dawn: GFLOP/s of our WGSL matmul (fast and naive 16×16), conv2d and attention
// beside onnxruntime-web's WebGPU EP running the same op on the same adapter. Prints a Markdown report.
// Usage: npm run bench:kernels [-- --sizes 256,512,1024 --reps 5 --no-ort --only matmul,conv,attention]
// The same benchmark inside Chromium: npm run bench:kernels:chromium (cli/bench-kernels-chromium.ts).
import os from 'node:os';
import { adapterName } from '../src/gpu/device';
import { describeSubnormals, probeSubnormals } from '../src/gpu/subnormals';
import { acquireNodeGpu, dawnPolling, nodeGpuEntry } from '../src/gpu/node';
import { MATMUL_TILING } from '../src/kernels/matmul';
import { ortLabel, parseKernelBenchArgs, reportTable, runKernelBench, TIMING_NOTE } from './bench/kernels';
import { createOrtRunner, type OrtRunner } from './bench/ort';

async function main(): Promise<void> {
  const opts = parseKernelBenchArgs(process.argv.slice(2));
  const gpu = await acquireNodeGpu({ label: 'bench-kernels' });
  const started = new Date();
  const load0 = os.loadavg();
  let ort: OrtRunner | undefined;
  if (opts.ort) {
    process.stderr.write('loading onnxruntime-web …\n');
    ort = await createOrtRunner(nodeGpuEntry(), gpu.device.queue);
    if (ort.fallbackReason)
      process.stderr.write(`ORT WebGPU EP unavailable (${ort.fallbackReason}); using WASM\n`);
  }
  const rows = await runKernelBench(gpu, ort, opts, (s) => process.stderr.write(s));
  const load1 = os.loadavg();
  const subnormals = describeSubnormals(await probeSubnormals(gpu));
  console.log(`## Kernel benchmark (${started.toISOString()})

- adapter: ${adapterName(gpu.adapter)}${gpu.adapter.isFallback ? ' (software)' : ''}; subnormal floats ${subnormals}
- host: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), load average ${load0[0].toFixed(1)} at start, ${load1[0].toFixed(1)} at end; Node ${process.version}
- ORT: onnxruntime-web ${ort ? `${ort.ep} EP` : 'not run'}${ort?.fallbackReason ? ` — WebGPU EP failed: ${ort.fallbackReason}` : ''}
- fast matmul tiling: ${JSON.stringify(MATMUL_TILING)}
- Dawn's wait for GPU work: ${dawnPolling() === 'spin' ? 'back-to-back setImmediate ticks (LORA2_DAWN_POLL=spin)' : 'polled on a 1 ms timer (up to ~1 ms added to each measured wait; LORA2_DAWN_POLL=spin for short kernels on a real GPU)'}
${TIMING_NOTE(opts.reps)}

${reportTable(rows, ortLabel(ort))}
`);
  gpu.destroy();
  process.exit(0);
}

await main();
