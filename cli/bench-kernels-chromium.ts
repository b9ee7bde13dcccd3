// The kernel benchmark inside Chromium (Debian's /usr/bin/chromium through playwright-core, WebGPU enabled;
// SwiftShader when there is no GPU): bundles cli/bench/browserEntry.ts with Vite, serves it and
// onnxruntime-web's wasm files from a local HTTP server, and prints the same Markdown report as the Node bench.
// Usage: npm run bench:kernels:chromium [-- --sizes 256,512 --reps 3 --naive-max 512 --no-ort --only …]
// LORA2_BENCH_TIMEOUT_MIN (default 60) bounds the run: SwiftShader has no GPU watchdog.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { build } from 'vite';
import { launchStudio } from '../e2e/support/browser';
import type { BrowserBenchState } from './bench/browserEntry';
import { DEFAULT_KERNEL_BENCH, parseKernelBenchArgs, reportTable, TIMING_NOTE } from './bench/kernels';

/** Software adapters run ~0.3 GFLOP/s: skip the naive kernel above 512³ and take 3 rounds unless asked. */
const CHROMIUM_DEFAULTS = { ...DEFAULT_KERNEL_BENCH, reps: 3, naiveMaxSize: 512 };

async function bundle(): Promise<Map<string, string | Uint8Array>> {
  const out = await build({
    configFile: false,
    logLevel: 'warn',
    build: {
      write: false,
      minify: false,
      target: 'es2022',
      lib: { entry: 'cli/bench/browserEntry.ts', formats: ['es'], fileName: 'bench' },
    },
  });
  const files = new Map<string, string | Uint8Array>();
  for (const o of (Array.isArray(out) ? out : [out]) as {
    output: { fileName: string; type: string; code?: string; source?: string | Uint8Array }[];
  }[])
    for (const f of o.output) files.set(f.fileName, f.type === 'chunk' ? f.code! : f.source!);
  if (!files.has('bench.js')) throw new Error(`bench bundle has no bench.js (got ${[...files.keys()]})`);
  return files;
}

const TYPES: Record<string, string> = {
  js: 'text/javascript',
  mjs: 'text/javascript',
  wasm: 'application/wasm',
};

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opts = parseKernelBenchArgs(argv, CHROMIUM_DEFAULTS);
  const files = await bundle();
  const ortDir = join(process.cwd(), 'node_modules/onnxruntime-web/dist');
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    let body: string | Uint8Array | undefined;
    if (path === '/')
      body = '<!doctype html><meta charset="utf-8"><script type="module" src="/bench.js"></script>';
    else if (path.startsWith('/ort/') && /^[\w.-]+$/.test(path.slice(5))) {
      try {
        body = readFileSync(join(ortDir, path.slice(5)));
      } catch {
        body = undefined;
      }
    } else body = files.get(path.slice(1));
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    const ext = path.split('.').pop() ?? '';
    res.writeHead(200, {
      'content-type': path === '/' ? 'text/html' : (TYPES[ext] ?? 'application/octet-stream'),
    });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const browser = await launchStudio(base);
  const timeoutMs = Number(process.env.LORA2_BENCH_TIMEOUT_MIN ?? 60) * 60_000;
  const started = new Date();
  const load0 = os.loadavg();
  try {
    const args = [
      `--sizes ${opts.sizes.join(',')}`,
      `--reps ${opts.reps}`,
      `--only ${[...opts.only].join(',')}`,
      `--naive-max ${opts.naiveMaxSize}`,
      opts.ort ? '' : '--no-ort',
    ].join(' ');
    await browser.page.goto(`${base}?args=${encodeURIComponent(args)}`);
    let printed = 0;
    const deadline = Date.now() + timeoutMs;
    let state: BrowserBenchState | undefined;
    for (;;) {
      state = await browser.page.evaluate(
        () => (globalThis as unknown as { __bench?: BrowserBenchState }).__bench,
      );
      if (state) {
        process.stderr.write(state.log.slice(printed));
        printed = state.log.length;
        if (state.done) break;
      }
      if (Date.now() > deadline) throw new Error(`bench did not finish in ${timeoutMs / 60_000} min`);
      await new Promise((r) => setTimeout(r, 2000));
    }
    if (state.error || !state.result)
      throw new Error(`bench failed in Chromium: ${state.error}\n${browser.logs.join('\n')}`);
    const r = state.result;
    const load1 = os.loadavg();
    console.log(`## Kernel benchmark in Chromium (${started.toISOString()})

- browser: ${r.userAgent}
- adapter: ${r.adapter}${r.software ? ' (software)' : ''}; subnormal floats ${r.subnormals}
- host: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), load average ${load0[0].toFixed(1)} at start, ${load1[0].toFixed(1)} at end
- ORT: onnxruntime-web ${r.ortLabel}${r.ortFallback ? ` — WebGPU EP failed: ${r.ortFallback}` : ''}
- fast matmul tiling: ${r.tiling}; naive 16×16 run up to ${opts.naiveMaxSize}³
${TIMING_NOTE(r.reps)}

${reportTable(r.rows, r.ortLabel)}
`);
  } finally {
    await browser.close();
    server.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
