// The kernel benchmark itself, shared by the Node CLI (Dawn) and the Chromium page (the browser's adapter):
// GFLOP/s of our WGSL matmul (fast and naive 16×16), conv2d and attention (tiled on both thread grids, and
// row-wise) beside onnxruntime-web's WebGPU EP running the same op on the same adapter.
import type { Gpu } from '../../src/gpu/device';
import { attentionBackward, attentionForward, attentionGrid } from '../../src/kernels/attention';
import { kernelContext, storageBuffer, upload, type KernelContext } from '../../src/kernels/common';
import { conv2d } from '../../src/kernels/conv2d';
import { matmul, matmulBackward, matmulNaiveTiled } from '../../src/kernels/matmul';
import type { OnnxGraph } from './onnx';
import type { OrtRunner } from './ortRunner';
import { median } from './stats';

export interface KernelBenchOptions {
  sizes: number[];
  reps: number;
  ort: boolean;
  only: Set<string>;
  /** The naive 16×16 matmul runs only up to this size (it is ~10× slower; software adapters pay minutes). */
  naiveMaxSize: number;
}

export const DEFAULT_KERNEL_BENCH: KernelBenchOptions = {
  sizes: [256, 512, 1024],
  reps: 5,
  ort: true,
  only: new Set(['matmul', 'conv', 'attention']),
  naiveMaxSize: Infinity,
};

/** `--sizes 256,512 --reps 3 --no-ort --only matmul,conv --naive-max 512` over the defaults. */
export function parseKernelBenchArgs(argv: string[], defaults = DEFAULT_KERNEL_BENCH): KernelBenchOptions {
  const opts = { ...defaults, only: new Set(defaults.only) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--sizes') opts.sizes = argv[++i].split(',').map(Number);
    else if (a === '--reps') opts.reps = Number(argv[++i]);
    else if (a === '--no-ort') opts.ort = false;
    else if (a === '--only') opts.only = new Set(argv[++i].split(','));
    else if (a === '--naive-max') opts.naiveMaxSize = Number(argv[++i]);
    else throw new Error(`bench-kernels: unknown argument ${a}`);
  }
  if (opts.sizes.some((n) => !(n > 0)) || !(opts.reps > 0))
    throw new Error('bench-kernels: bad --sizes/--reps');
  return opts;
}

interface BenchEnv {
  ctx: KernelContext;
  ort: OrtRunner | undefined;
  reps: number;
  naiveMaxSize: number;
  log: (text: string) => void;
}

/** One implementation of a benchmarked op: `run` records the work and resolves when the GPU is done. */
export interface Contender {
  name: 'ours' | 'baseline' | 'ort';
  run: () => Promise<void>;
  release?: () => Promise<void>;
}

export interface Row {
  op: string;
  flops: number;
  /** Median milliseconds per contender. */
  ms: Partial<Record<Contender['name'], number>>;
  note?: string;
}

/**
 * One warm-up run each (pipeline compiles land there), then `reps` rounds in which every contender runs
 * once in turn, so load changes on a shared machine hit all of them alike. Returns median ms per contender.
 */
async function measure(all: Contender[], reps: number, notes: string[]): Promise<Row['ms']> {
  const contenders: Contender[] = [];
  for (const c of all) {
    try {
      await c.run();
      contenders.push(c);
    } catch (e) {
      // A failing contender (e.g. an ORT graph the EP rejects) is reported, not fatal.
      notes.push(`${c.name} failed: ${String(e).split('\n')[0].slice(0, 200)}`);
    }
  }
  const times = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let r = 0; r < reps; r++) {
    for (const c of contenders) {
      const t0 = performance.now();
      await c.run();
      times.get(c.name)!.push(performance.now() - t0);
    }
  }
  return Object.fromEntries([...times].map(([k, v]) => [k, median(v)]));
}

function randomBuffer(ctx: KernelContext, label: string, n: number): GPUBuffer {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return upload(ctx, label, a);
}

/** Runs a launcher and waits until the queue has finished it. */
const ours = (ctx: KernelContext, name: Contender['name'], launch: () => Promise<void>): Contender => ({
  name,
  run: async () => {
    await launch();
    await ctx.device.queue.onSubmittedWorkDone();
  },
});

async function ortContender(ort: OrtRunner | undefined, graph: OnnxGraph): Promise<Contender[]> {
  if (!ort) return [];
  try {
    const p = await ort.prepare(graph);
    return [{ name: 'ort', run: p.run, release: p.release }];
  } catch (e) {
    // Session creation failed: surface it through measure's failure note.
    return [{ name: 'ort', run: () => Promise.reject(e) }];
  }
}

async function benchOp(
  env: BenchEnv,
  label: string,
  flops: number,
  contenders: Contender[],
  note?: string,
): Promise<Row> {
  const { log, reps } = env;
  log(`  ${label} …`);
  const t0 = performance.now();
  const notes = note ? [note] : [];
  const ms = await measure(contenders, reps, notes);
  for (const c of contenders) await c.release?.();
  log(` ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  return { op: label, flops, ms, note: notes.join('; ') || undefined };
}

function matmulGraph(n: number): OnnxGraph {
  const sq = [n, n];
  return {
    name: `matmul${n}`,
    nodes: [{ opType: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
    inputs: [
      { name: 'a', shape: sq },
      { name: 'b', shape: sq },
    ],
    outputs: [{ name: 'y', shape: sq }],
  };
}

/** dA = dY·Bᵀ and dB = Aᵀ·dY as two Gemm nodes (ORT's MatMul has no transpose flags). */
function matmulBackwardGraph(n: number): OnnxGraph {
  const sq = [n, n];
  return {
    name: `matmul${n}.backward`,
    nodes: [
      { opType: 'Gemm', inputs: ['dy', 'b'], outputs: ['da'], attributes: [{ name: 'transB', int: 1 }] },
      { opType: 'Gemm', inputs: ['a', 'dy'], outputs: ['db'], attributes: [{ name: 'transA', int: 1 }] },
    ],
    inputs: ['a', 'b', 'dy'].map((name) => ({ name, shape: sq })),
    outputs: ['da', 'db'].map((name) => ({ name, shape: sq })),
  };
}

async function benchMatmul(env: BenchEnv, n: number): Promise<Row[]> {
  const { ctx, ort } = env;
  const naive = n <= env.naiveMaxSize;
  const [a, b, dy] = ['a', 'b', 'dy'].map((s) => randomBuffer(ctx, `bench.matmul.${s}`, n * n));
  const [out, da, db] = ['out', 'da', 'db'].map((s) => storageBuffer(ctx, `bench.matmul.${s}`, n * n * 4));
  const shape = { m: n, n, k: n };
  const forward = await benchOp(env, `matmul ${n}³ forward`, 2 * n ** 3, [
    ours(ctx, 'ours', () => matmul(ctx, { ...shape, a, b, out })),
    ...(naive ? [ours(ctx, 'baseline', () => matmulNaiveTiled(ctx, { ...shape, a, b, out }))] : []),
    ...(await ortContender(ort, matmulGraph(n))),
  ]);
  const naiveBackward = ours(ctx, 'baseline', async () => {
    await matmulNaiveTiled(ctx, { ...shape, a: dy, b, out: da, transposeB: true });
    await matmulNaiveTiled(ctx, { ...shape, a, b: dy, out: db, transposeA: true });
  });
  const backward = await benchOp(env, `matmul ${n}³ backward (dA, dB)`, 4 * n ** 3, [
    ours(ctx, 'ours', () => matmulBackward(ctx, { ...shape, a, b, dy, da, db })),
    ...(naive ? [naiveBackward] : []),
    ...(await ortContender(ort, matmulBackwardGraph(n))),
  ]);
  for (const buf of [a, b, dy, out, da, db]) buf.destroy();
  return [forward, backward];
}

async function benchConv(env: BenchEnv): Promise<Row> {
  const { ctx, ort } = env;
  const s = { batch: 4, cin: 64, h: 32, w: 32, cout: 64, kh: 3, kw: 3, stride: 1, pad: 1 };
  const x = randomBuffer(ctx, 'bench.conv.x', s.batch * s.cin * s.h * s.w);
  const weight = randomBuffer(ctx, 'bench.conv.weight', s.cout * s.cin * 9);
  const bias = randomBuffer(ctx, 'bench.conv.bias', s.cout);
  const out = storageBuffer(ctx, 'bench.conv.out', s.batch * s.cout * s.h * s.w * 4);
  const graph: OnnxGraph = {
    name: 'conv3x3',
    nodes: [
      {
        opType: 'Conv',
        inputs: ['x', 'w', 'b'],
        outputs: ['y'],
        attributes: [
          { name: 'kernel_shape', ints: [3, 3] },
          { name: 'pads', ints: [1, 1, 1, 1] },
          { name: 'strides', ints: [1, 1] },
        ],
      },
    ],
    inputs: [
      { name: 'x', shape: [s.batch, s.cin, s.h, s.w] },
      { name: 'w', shape: [s.cout, s.cin, 3, 3] },
      { name: 'b', shape: [s.cout] },
    ],
    outputs: [{ name: 'y', shape: [s.batch, s.cout, s.h, s.w] }],
  };
  const flops = 2 * s.batch * s.cout * s.h * s.w * s.cin * 9;
  const row = await benchOp(env, 'conv2d 3×3, 64→64 ch, 32×32, batch 4', flops, [
    ours(ctx, 'ours', () => conv2d(ctx, { ...s, x, weight, bias, out })),
    ...(await ortContender(ort, graph)),
  ]);
  for (const buf of [x, weight, bias, out]) buf.destroy();
  return row;
}

async function benchAttention(env: BenchEnv): Promise<Row[]> {
  const { ctx, ort } = env;
  const s = { batch: 1, heads: 4, queryLen: 1024, keyLen: 1024, headDim: 64 };
  const n = s.batch * s.heads * s.queryLen * s.headDim;
  const [q, k, v] = ['q', 'k', 'v'].map((t) => randomBuffer(ctx, `bench.attention.${t}`, n));
  const out = storageBuffer(ctx, 'bench.attention.out', n * 4);
  const lse = storageBuffer(ctx, 'bench.attention.lse', s.batch * s.heads * s.queryLen * 4);
  const bhnd = [s.batch, s.heads, s.queryLen, s.headDim];
  // softmax(scale·q·kᵀ)·v with kᵀ fed pre-transposed; ORT materialises the 1024×1024 scores, we do not.
  const graph: OnnxGraph = {
    name: 'attention',
    nodes: [
      { opType: 'MatMul', inputs: ['q', 'kt'], outputs: ['s'] },
      { opType: 'Mul', inputs: ['s', 'scale'], outputs: ['ss'] },
      { opType: 'Softmax', inputs: ['ss'], outputs: ['p'] },
      { opType: 'MatMul', inputs: ['p', 'v'], outputs: ['y'] },
    ],
    inputs: [
      { name: 'q', shape: bhnd },
      { name: 'kt', shape: [s.batch, s.heads, s.headDim, s.keyLen] },
      { name: 'scale', shape: [1] },
      { name: 'v', shape: bhnd },
    ],
    outputs: [{ name: 'y', shape: bhnd }],
  };
  const flops = 4 * s.batch * s.heads * s.queryLen * s.keyLen * s.headDim;
  const dOut = randomBuffer(ctx, 'bench.attention.dOut', n);
  const delta = storageBuffer(ctx, 'bench.attention.delta', s.batch * s.heads * s.queryLen * 4);
  const [dq, dk, dv] = ['dq', 'dk', 'dv'].map((t) => storageBuffer(ctx, `bench.attention.${t}`, n * 4));
  const grads = { ...s, q, k, v, out, lse, dOut, delta, dq, dk, dv };
  // Both thread grids of the tiled kernels (the adapter's default is marked), each beside the row-wise kernels.
  const rows: Row[] = [];
  for (const grid of ['compact', 'wide'] as const) {
    const withGrid = (run: () => Promise<void>) => async () => {
      ctx.attentionGrid = grid;
      try {
        await run();
      } finally {
        ctx.attentionGrid = undefined;
      }
    };
    const name = `${grid} grid${grid === attentionGrid(ctx) ? ", this adapter's default" : ''}`;
    rows.push(
      await benchOp(
        env,
        `attention 1024 tokens, 4 heads × 64 (forward, ${name})`,
        flops,
        [
          ours(
            ctx,
            'ours',
            withGrid(() => attentionForward(ctx, { ...s, q, k, v, out, lse })),
          ),
          ours(ctx, 'baseline', () => attentionForward(ctx, { ...s, q, k, v, out, lse, kernel: 'rows' })),
          ...(await ortContender(ort, graph)),
        ],
        'FLOPs count q·kᵀ and p·v only',
      ),
    );
    // The backward on the same inputs (lse and out from the forward above): delta, dK/dV and dQ. ORT has no
    // fused attention gradient to compare with, so this row is ours against the row-wise kernels.
    rows.push(
      await benchOp(
        env,
        `attention 1024 tokens, 4 heads × 64 (backward, ${name})`,
        2.5 * flops,
        [
          ours(
            ctx,
            'ours',
            withGrid(() => attentionBackward(ctx, grads)),
          ),
          ours(ctx, 'baseline', () => attentionBackward(ctx, { ...grads, kernel: 'rows' })),
        ],
        'FLOPs: 2.5× the forward, as FlashAttention-2 counts dQ, dK, dV, dO·vᵀ and q·kᵀ; no ORT graph',
      ),
    );
  }
  for (const buf of [q, k, v, out, lse, dOut, delta, dq, dk, dv]) buf.destroy();
  return rows;
}

const gflops = (row: Row, who: Contender['name']) => {
  const ms = row.ms[who];
  return ms === undefined ? undefined : row.flops / ms / 1e6;
};

export function reportTable(rows: Row[], ortLabel: string): string {
  const cell = (row: Row, who: Contender['name']) => {
    const ms = row.ms[who];
    return ms === undefined ? '—' : `${ms.toFixed(1)} ms · ${gflops(row, who)!.toFixed(2)}`;
  };
  const ratio = (row: Row, other: Contender['name']) => {
    const a = row.ms.ours;
    const b = row.ms[other];
    return a === undefined || b === undefined ? '—' : `${(b / a).toFixed(2)}×`;
  };
  const lines = [
    `| op | ours (ms · GFLOP/s) | baseline: naive 16×16 matmul, row-wise attention | ${ortLabel} | ours/ORT | ours/baseline |`,
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.op}${r.note ? ` (${r.note})` : ''} | ${cell(r, 'ours')} | ${cell(r, 'baseline')} | ${cell(r, 'ort')} | ` +
        `${ratio(r, 'ort')} | ${ratio(r, 'baseline')} |`,
    ),
  ];
  return lines.join('\n');
}

/** Runs the selected benchmarks on `gpu` (and ORT when given); `log` receives progress text. */
export async function runKernelBench(
  gpu: Gpu,
  ort: OrtRunner | undefined,
  opts: KernelBenchOptions,
  log: (text: string) => void,
): Promise<Row[]> {
  const env: BenchEnv = {
    ctx: kernelContext(gpu),
    ort,
    reps: opts.reps,
    naiveMaxSize: opts.naiveMaxSize,
    log,
  };
  const rows: Row[] = [];
  if (opts.only.has('matmul')) for (const n of opts.sizes) rows.push(...(await benchMatmul(env, n)));
  if (opts.only.has('conv')) rows.push(await benchConv(env));
  if (opts.only.has('attention')) rows.push(...(await benchAttention(env)));
  return rows;
}

export function ortLabel(ort: OrtRunner | undefined): string {
  return !ort ? 'ORT (skipped)' : ort.ep === 'webgpu' ? 'ORT WebGPU EP' : 'ORT WASM EP (WebGPU EP failed)';
}

export const TIMING_NOTE = (reps: number) =>
  `- timing: one warm-up run each (includes shader compiles), then ${reps} interleaved rounds; median wall time from
  launch until queue.onSubmittedWorkDone() (ORT: session.run with GPU-resident inputs/outputs, then its queue drained).
  Cells: median ms · GFLOP/s. Ratios: time of the other ÷ time of ours (> 1 means ours is faster).`;
