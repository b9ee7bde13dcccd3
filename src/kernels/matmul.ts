// Batched matmul C = α·op(A)·op(B) (+ bias) (+ C) and the linear layer built on it, forward and backward:
// a register-tiled kernel with vec4 tile loads (the fast one) and a plain 16×16 tiled kernel (the baseline).
import { getPipeline, launch, uniformBuffer, type KernelContext, type Workgroups } from './common';
import { mapReduce } from './reduce';

export type MatmulDType = 'f32' | 'f16';

/**
 * Shapes are per batch item: op(A) is [m, k], op(B) is [k, n], out is [m, n]. A is stored [batch, m, k]
 * ([batch, k, m] when transposeA), B likewise ([n, k] when transposeB); all row-major and contiguous.
 */
export interface MatmulShape {
  m: number;
  n: number;
  k: number;
  /** Batch items (default 1); each has its own A and output. */
  batch?: number;
  transposeA?: boolean;
  transposeB?: boolean;
  /** B has no batch dimension: one [k, n] (or [n, k]) matrix shared by every batch item (weights). */
  broadcastB?: boolean;
  /** Scales op(A)·op(B) (not the bias). Default 1. */
  alpha?: number;
}

export interface MatmulArgs extends MatmulShape {
  a: GPUBuffer;
  b: GPUBuffer;
  out: GPUBuffer;
  /** [n], added to every row of the output. */
  bias?: GPUBuffer;
  /** out += result instead of out = result. */
  accumulate?: boolean;
  /** Storage type of a, b, bias and out (f16 needs shader-f16; accumulation is f32 either way). */
  dtype?: MatmulDType;
  /**
   * B alone holds IEEE halves (two per u32, element 2i in the low bits), read as f32: frozen f16 weights
   * beside f32 activations. Core WGSL (unpack2x16float), so no shader-f16 needed; dtype must be f32.
   */
  bF16?: boolean;
}

/**
 * Register tiling of the fast kernel: a wgX×wgY thread grid, each thread rowsPerThread×4 outputs (one vec4
 * of columns), so one workgroup computes a (wgY·rowsPerThread)×(4·wgX) output tile.
 */
export interface MatmulTiling {
  wgX: number;
  wgY: number;
  /** A multiple of 4 (rows are read from the A tile as vec4s). */
  rowsPerThread: number;
  /** Reduction depth of one workgroup-memory tile; a multiple of 4. */
  bk: number;
}

/**
 * 64×64 output tiles from 64 threads, 16×4 outputs per thread, 32-deep k tiles (16 KiB of workgroup memory,
 * the engine's required minimum). Chosen by a sweep on lavapipe (BENCHMARKS.md), where every workgroup- or
 * storage-memory read costs a per-lane load, so more outputs per loaded value and fewer barriers win.
 */
export const MATMUL_TILING: MatmulTiling = { wgX: 16, wgY: 4, rowsPerThread: 16, bk: 32 };

function checkTiling(ctx: KernelContext, t: MatmulTiling): void {
  const threads = t.wgX * t.wgY;
  const shared = t.bk * (t.wgY * t.rowsPerThread + t.wgX * 4) * 4;
  const ok =
    t.rowsPerThread % 4 === 0 &&
    t.bk % 4 === 0 &&
    threads <= (ctx.gpu.limits.maxComputeInvocationsPerWorkgroup ?? 256) &&
    shared <= (ctx.gpu.limits.maxComputeWorkgroupStorageSize ?? 16384);
  if (!ok) throw new Error(`matmul: unsupported tiling ${JSON.stringify(t)}`);
}

/** The lowered form every launch takes: explicit element offsets and batch strides (0 = broadcast). */
type Gemm = Required<Omit<MatmulArgs, 'bias' | 'broadcastB'>> & {
  bias?: GPUBuffer;
  aOffset: number;
  bOffset: number;
  cOffset: number;
  aBatchStride: number;
  bBatchStride: number;
};

function lower(args: MatmulArgs): Gemm {
  const { m, n, k } = args;
  const batch = args.batch ?? 1;
  for (const [name, v] of Object.entries({ m, n, k, batch })) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`matmul: ${name}=${v} is not a non-negative integer`);
  }
  return {
    a: args.a,
    b: args.b,
    out: args.out,
    bias: args.bias,
    m,
    n,
    k,
    batch,
    transposeA: args.transposeA ?? false,
    transposeB: args.transposeB ?? false,
    aOffset: 0,
    bOffset: 0,
    cOffset: 0,
    aBatchStride: m * k,
    bBatchStride: args.broadcastB ? 0 : k * n,
    accumulate: args.accumulate ?? false,
    alpha: args.alpha ?? 1,
    dtype: args.dtype ?? 'f32',
    bF16: args.bF16 ?? false,
  };
}

function checkDType(ctx: KernelContext, op: string, g: Gemm): void {
  if (g.dtype === 'f16' && !ctx.gpu.features.shaderF16) {
    throw new Error(`${op}: dtype f16 needs the shader-f16 feature, which this device lacks`);
  }
  if (g.bF16 && g.dtype !== 'f32') throw new Error(`${op}: bF16 (f16 B) goes with dtype f32 only`);
}

/** Element offsets and batch strides of the three operands, α and the accumulate flag: the kernels' uniform. */
function gemmParams(ctx: KernelContext, label: string, g: Gemm): GPUBuffer {
  const values = [
    g.m,
    g.n,
    g.k,
    g.aOffset,
    g.bOffset,
    g.cOffset,
    g.aBatchStride,
    g.bBatchStride,
    g.m * g.n,
    g.alpha,
    g.accumulate ? 1 : 0,
  ];
  return uniformBuffer(ctx, label, values, new Set([9]));
}

/** WGSL shared by both kernels: the uniform, bindings and the index math of op(A), op(B) and C. */
function wgslGemmCommon(
  g: Gemm,
  vec: { a: boolean; b: boolean; c: boolean },
  hasBias: boolean,
): { header: string; T: string } {
  const T = g.dtype;
  const arr = (v: boolean) => (v ? `vec4<${T}>` : T);
  return {
    T,
    header: /* wgsl */ `
${T === 'f16' ? 'enable f16;' : ''}
struct Params {
  m: u32, n: u32, k: u32,
  aOffset: u32, bOffset: u32, cOffset: u32,
  aBatch: u32, bBatch: u32, cBatch: u32,
  alpha: f32,
  accumulate: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<${arr(vec.a)}>;
@group(0) @binding(2) var<storage, read> b: array<${g.bF16 ? 'u32' : arr(vec.b)}>;
@group(0) @binding(3) var<storage, read_write> c: array<${arr(vec.c)}>;
${hasBias ? `@group(0) @binding(4) var<storage, read> bias: array<${arr(vec.c)}>;` : ''}

// Element index of op(A)[m, k] and op(B)[k, n] in batch item z (layouts fixed per pipeline).
fn aIndex(z: u32, m: u32, k: u32) -> u32 {
  return p.aOffset + z * p.aBatch + ${g.transposeA ? 'k * p.m + m' : 'm * p.k + k'};
}
fn bIndex(z: u32, k: u32, n: u32) -> u32 {
  return p.bOffset + z * p.bBatch + ${g.transposeB ? 'n * p.k + k' : 'k * p.n + n'};
}
fn cIndex(z: u32, m: u32, n: u32) -> u32 {
  return p.cOffset + z * p.cBatch + m * p.n + n;
}${g.bF16 ? WGSL_LOAD_B_F16 : ''}`,
  };
}

/** B as packed halves: element i is half (i & 1) of word i / 2; four from a 4-aligned i are two words. */
const WGSL_LOAD_B_F16 = /* wgsl */ `
fn loadB(i: u32) -> f32 {
  return unpack2x16float(b[i >> 1u])[i & 1u];
}
fn loadB4(i: u32) -> vec4<f32> {
  let w = i >> 1u;
  return vec4<f32>(unpack2x16float(b[w]), unpack2x16float(b[w + 1u]));
}`;

function gemmDispatch(ctx: KernelContext, op: string, g: Gemm, bm: number, bn: number): Workgroups {
  const wg: Workgroups = [Math.ceil(g.n / bn), Math.ceil(g.m / bm), g.batch];
  const max = ctx.gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535;
  if (wg.some((d) => d > max)) throw new Error(`${op}: dispatch [${wg}] exceeds device limit ${max}`);
  return wg;
}

function gemmBuffers(g: Gemm): GPUBuffer[] {
  return [g.a, g.b, g.out, ...(g.bias ? [g.bias] : [])];
}

/** True when `elems` elements of a 4-aligned layout stay 4-aligned: the condition for vec4 access. */
function aligned4(...elems: number[]): boolean {
  return elems.every((e) => e % 4 === 0);
}

/**
 * WGSL that fills one workgroup tile `[BK][BO]` (o = m for A, n for B; o contiguous, stored as vec4) from
 * the operand, zero outside the matrix. `oFast`: the operand is contiguous along o in memory (else along
 * k); `vec`: read vec4s along the contiguous dimension. Consecutive threads read consecutive addresses.
 */
function wgslFillTile(
  operand: 'a' | 'b',
  bo: number,
  bk: number,
  threads: number,
  oFast: boolean,
  vec: boolean,
  halves = false,
): string {
  const tile = operand === 'a' ? 'As' : 'Bs';
  const o0 = operand === 'a' ? 'row0' : 'col0';
  const oMax = operand === 'a' ? 'p.m' : 'p.n';
  const index = (o: string, k: string) =>
    operand === 'a' ? `aIndex(z, ${o}, ${k})` : `bIndex(z, ${k}, ${o})`;
  const slots = (bo * bk) / (vec ? 4 : 1);
  const fast = oFast ? bo : bk;
  const width = vec ? fast / 4 : fast;
  // Tile coordinates of slot s; the contiguous dimension varies fastest across threads (coalesced reads).
  const step = vec ? ' * 4u' : '';
  const [ol, kl] = oFast
    ? [`(s % ${width}u)${step}`, `s / ${width}u`]
    : [`s / ${width}u`, `(s % ${width}u)${step}`];
  const at = index('go', 'gk');
  const load = halves
    ? `${vec ? 'loadB4' : 'loadB'}(${at})`
    : vec
      ? `vec4<f32>(${operand}[${at} / 4u])`
      : `f32(${operand}[${at}])`;
  let store: string;
  if (vec && oFast) {
    // Four o at one k go straight into the tile.
    store = `${tile}[kl * ${bo / 4}u + ol / 4u] = v;`;
  } else if (vec) {
    // Four k at one o, scattered down a tile column.
    store = `let at = kl * ${bo / 4}u + ol / 4u;
      let lane = ol % 4u;
      ${tile}[at][lane] = v.x;
      ${tile}[at + ${bo / 4}u][lane] = v.y;
      ${tile}[at + ${(2 * bo) / 4}u][lane] = v.z;
      ${tile}[at + ${(3 * bo) / 4}u][lane] = v.w;`;
  } else {
    store = `${tile}[kl * ${bo / 4}u + ol / 4u][ol % 4u] = v;`;
  }
  const body = `
      let ol = ${ol};
      let kl = ${kl};
      let go = ${o0} + ol;
      let gk = k0 + kl;
      var v = ${vec ? 'vec4<f32>(0.0)' : '0.0'};
      if (go < ${oMax} && gk < p.k) { v = ${load}; }
      ${store}`;
  return `
    for (var s = t; s < ${slots}u; s += ${threads}u) {${body}
    }`;
}

function tiledShader(g: Gemm, tiling: MatmulTiling, vec: { a: boolean; b: boolean; c: boolean }): string {
  const { wgX, wgY, rowsPerThread: rm, bk } = tiling;
  const bm = wgY * rm;
  const bn = wgX * 4;
  const threads = wgX * wgY;
  const hasBias = g.bias !== undefined;
  const { header, T } = wgslGemmCommon(g, vec, hasBias);
  const rows = [...Array(rm).keys()];
  const comps = ['x', 'y', 'z', 'w'];
  const store = (r: number) => {
    const head = `{
    let gm = row0 + lid.y * ${rm}u + ${r}u;`;
    if (vec.c) {
      return `${head}
    if (gm < p.m && gn < p.n) {
      var v = p.alpha * acc${r}${hasBias ? ` + vec4<f32>(bias[gn / 4u])` : ''};
      if (p.accumulate != 0u) { v += vec4<f32>(c[cIndex(z, gm, gn) / 4u]); }
      c[cIndex(z, gm, gn) / 4u] = vec4<${T}>(v);
    }
  }`;
    }
    return `${head}
    if (gm < p.m) {
      // A runtime trip count keeps the compiler from unrolling 4 guarded stores per row.
      for (var j = 0u; j < min(4u, p.n - min(gn, p.n)); j++) {
        var v = p.alpha * acc${r}[j]${hasBias ? ` + f32(bias[gn + j])` : ''};
        if (p.accumulate != 0u) { v += f32(c[cIndex(z, gm, gn + j)]); }
        c[cIndex(z, gm, gn + j)] = ${T}(v);
      }
    }
  }`;
  };
  return /* wgsl */ `${header}

// Tiles [BK][BM] of op(A) and [BK][BN] of op(B), both contiguous along the output dimension.
var<workgroup> As: array<vec4<f32>, ${(bk * bm) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(bk * bn) / 4}>;

@compute @workgroup_size(${wgX}, ${wgY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
  let z = wid.z;
  let row0 = wid.y * ${bm}u;
  let col0 = wid.x * ${bn}u;
  // Thread (x, y) owns rows y·${rm} … y·${rm}+${rm - 1} and the four columns 4x … 4x+3 of the tile.
  ${rows.map((r) => `var acc${r} = vec4<f32>(0.0);`).join('\n  ')}
  for (var k0 = 0u; k0 < p.k; k0 += ${bk}u) {
    ${wgslFillTile('a', bm, bk, threads, g.transposeA, vec.a)}
    ${wgslFillTile('b', bn, bk, threads, !g.transposeB, vec.b, g.bF16)}
    workgroupBarrier();
    for (var kk = 0u; kk < ${bk}u; kk++) {
      let b4 = Bs[kk * ${bn / 4}u + lid.x];
      ${[...Array(rm / 4).keys()].map((i) => `let a${i} = As[kk * ${bm / 4}u + lid.y * ${rm / 4}u + ${i}u];`).join('\n      ')}
      ${rows.map((r) => `acc${r} = fma(vec4<f32>(a${Math.floor(r / 4)}.${comps[r % 4]}), b4, acc${r});`).join('\n      ')}
    }
    workgroupBarrier();
  }
  let gn = col0 + lid.x * 4u;
  ${rows.map(store).join('\n  ')}
}`;
}

/** Output tile edge of the plain tiled kernel: one output per thread of a 16×16 workgroup. */
const NAIVE_TILE = 16;

function naiveShader(g: Gemm): string {
  const hasBias = g.bias !== undefined;
  const { header, T } = wgslGemmCommon(g, { a: false, b: false, c: false }, hasBias);
  return /* wgsl */ `${header}

var<workgroup> As: array<array<f32, ${NAIVE_TILE}>, ${NAIVE_TILE}>;
var<workgroup> Bs: array<array<f32, ${NAIVE_TILE}>, ${NAIVE_TILE}>;

@compute @workgroup_size(${NAIVE_TILE}, ${NAIVE_TILE})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let z = wid.z;
  let row = wid.y * ${NAIVE_TILE}u + lid.y;
  let col = wid.x * ${NAIVE_TILE}u + lid.x;
  var acc = 0.0;
  for (var k0 = 0u; k0 < p.k; k0 += ${NAIVE_TILE}u) {
    let ka = k0 + lid.x;
    let kb = k0 + lid.y;
    As[lid.y][lid.x] = select(0.0, f32(a[aIndex(z, min(row, p.m - 1u), min(ka, p.k - 1u))]), row < p.m && ka < p.k);
    let bAt = bIndex(z, min(kb, p.k - 1u), min(col, p.n - 1u));
    Bs[lid.y][lid.x] = select(0.0, ${g.bF16 ? 'loadB(bAt)' : 'f32(b[bAt])'}, kb < p.k && col < p.n);
    workgroupBarrier();
    for (var kk = 0u; kk < ${NAIVE_TILE}u; kk++) {
      acc += As[lid.y][kk] * Bs[kk][lid.x];
    }
    workgroupBarrier();
  }
  if (row < p.m && col < p.n) {
    var v = p.alpha * acc${hasBias ? ' + f32(bias[col])' : ''};
    if (p.accumulate != 0u) { v += f32(c[cIndex(z, row, col)]); }
    c[cIndex(z, row, col)] = ${T}(v);
  }
}`;
}

/** An empty output needs no launch (k = 0 still launches: out = bias, or out += bias when accumulating). */
function emptyOutput(g: Gemm): boolean {
  return g.m === 0 || g.n === 0 || g.batch === 0;
}

function specLabel(op: string, g: Gemm, extra = ''): string {
  const t = `${g.transposeA ? 'T' : 'N'}${g.transposeB ? 'T' : 'N'}`;
  return `${op}.${t}${g.bias ? '.bias' : ''}.${g.dtype}${g.bF16 ? '.bhalf' : ''}${extra}`;
}

async function runTiled(ctx: KernelContext, g: Gemm, tiling: MatmulTiling): Promise<void> {
  if (emptyOutput(g)) return;
  checkDType(ctx, 'matmul', g);
  checkTiling(ctx, tiling);
  // vec4 access along an operand's contiguous dimension needs every row start 4-aligned.
  const vec = {
    a: aligned4(g.aOffset, g.aBatchStride, g.transposeA ? g.m : g.k),
    b: aligned4(g.bOffset, g.bBatchStride, g.transposeB ? g.k : g.n),
    c: aligned4(g.cOffset, g.n),
  };
  const v = `.${vec.a ? 'v' : 's'}${vec.b ? 'v' : 's'}${vec.c ? 'v' : 's'}`;
  const label = specLabel('matmul', g, v);
  const pipeline = await getPipeline(ctx, label, tiledShader(g, tiling, vec));
  const params = gemmParams(ctx, label, g);
  const workgroups = gemmDispatch(ctx, label, g, tiling.wgY * tiling.rowsPerThread, tiling.wgX * 4);
  launch(ctx, { label, pipeline, buffers: [params, ...gemmBuffers(g)], workgroups }, [params]);
}

async function runNaive(ctx: KernelContext, g: Gemm): Promise<void> {
  if (emptyOutput(g)) return;
  checkDType(ctx, 'matmulNaiveTiled', g);
  const label = specLabel('matmulNaiveTiled', g);
  const pipeline = await getPipeline(ctx, label, naiveShader(g));
  const params = gemmParams(ctx, label, g);
  const workgroups = gemmDispatch(ctx, label, g, NAIVE_TILE, NAIVE_TILE);
  launch(ctx, { label, pipeline, buffers: [params, ...gemmBuffers(g)], workgroups }, [params]);
}

/**
 * out[z] = α·op(A[z])·op(B[z]) + bias (+ out[z] when accumulating), for z < batch. The fast kernel:
 * register-tiled, vec4 loads wherever the layout keeps 4-element alignment, any m, n, k.
 */
export function matmul(
  ctx: KernelContext,
  args: MatmulArgs,
  tiling: MatmulTiling = MATMUL_TILING,
): Promise<void> {
  return runTiled(ctx, lower(args), tiling);
}

/** The same contract as `matmul` with one output per thread of 16×16 tiles: the simplest correct version. */
export function matmulNaiveTiled(ctx: KernelContext, args: MatmulArgs): Promise<void> {
  return runNaive(ctx, lower(args));
}

export interface MatmulBackwardArgs extends Omit<MatmulArgs, 'out' | 'bias' | 'alpha'> {
  /** Gradient of the output, [batch, m, n]. */
  dy: GPUBuffer;
  /** Gradient of A, laid out like A. */
  da?: GPUBuffer;
  /** Gradient of B, laid out like B (summed over the batch when broadcastB). */
  db?: GPUBuffer;
  /** Gradient of the bias, [n] (summed over batch and rows). f32 only. */
  dbias?: GPUBuffer;
  /** Add into da, db and dbias instead of overwriting them. */
  accumulate?: boolean;
  /** The forward α. Default 1. */
  alpha?: number;
}

/**
 * Gradients of `matmul`: with Y = α·op(A)·op(B), d op(A) = α·dY·op(B)ᵀ and d op(B) = α·op(A)ᵀ·dY, each
 * one forward launch with transpose flags chosen so that the result lands in A's (B's) stored layout.
 */
export async function matmulBackward(
  ctx: KernelContext,
  args: MatmulBackwardArgs,
  tiling: MatmulTiling = MATMUL_TILING,
): Promise<void> {
  const f = lower({ ...args, out: args.dy });
  if (f.bF16 && (args.db || (args.da && f.transposeA))) {
    throw new Error('matmulBackward: an f16 B (bF16) is frozen: dA with untransposed A only, no dB');
  }
  const common = {
    accumulate: f.accumulate,
    alpha: f.alpha,
    dtype: f.dtype,
    batch: f.batch,
    cOffset: 0,
    bF16: false,
  };
  const dyStride = f.m * f.n;
  if (args.da) {
    // Stored A is [m,k]: dA = dY·op(B)ᵀ. Stored A is [k,m]: dA = op(B)·dYᵀ.
    const g: Gemm = f.transposeA
      ? {
          ...common,
          a: f.b,
          b: args.dy,
          out: args.da,
          m: f.k,
          n: f.m,
          k: f.n,
          transposeA: f.transposeB,
          transposeB: true,
          aOffset: 0,
          bOffset: 0,
          aBatchStride: f.bBatchStride,
          bBatchStride: dyStride,
        }
      : {
          ...common,
          a: args.dy,
          b: f.b,
          out: args.da,
          m: f.m,
          n: f.k,
          k: f.n,
          transposeA: false,
          transposeB: !f.transposeB,
          aOffset: 0,
          bOffset: 0,
          aBatchStride: dyStride,
          bBatchStride: f.bBatchStride,
          bF16: f.bF16,
        };
    await runTiled(ctx, g, tiling);
  }
  if (args.db) await weightGradient(ctx, f, args.dy, args.db, tiling);
  if (args.dbias) {
    if (f.dtype !== 'f32') throw new Error('matmulBackward: dbias supports f32 only');
    await biasGradient(ctx, {
      dy: args.dy,
      dbias: args.dbias,
      rows: f.batch * f.m,
      cols: f.n,
      accumulate: f.accumulate,
    });
  }
}

/** dB (stored layout) for one batch item's operands, or the sum over the batch when B is broadcast. */
async function weightGradient(
  ctx: KernelContext,
  f: Gemm,
  dy: GPUBuffer,
  db: GPUBuffer,
  tiling: MatmulTiling,
): Promise<void> {
  const dyStride = f.m * f.n;
  // Stored B is [k,n]: dB = op(A)ᵀ·dY. Stored B is [n,k]: dB = dYᵀ·op(A).
  const item = (z: number, rows: number, accumulate: boolean): Gemm => {
    const base = { accumulate, alpha: f.alpha, dtype: f.dtype, out: db, cOffset: 0, bF16: false };
    const aOff = z * f.aBatchStride;
    const dyOff = z * dyStride;
    return f.transposeB
      ? {
          ...base,
          a: dy,
          b: f.a,
          m: f.n,
          n: f.k,
          k: rows,
          transposeA: true,
          transposeB: f.transposeA,
          aOffset: dyOff,
          bOffset: aOff,
          aBatchStride: dyStride,
          bBatchStride: f.aBatchStride,
          batch: 1,
        }
      : {
          ...base,
          a: f.a,
          b: dy,
          m: f.k,
          n: f.n,
          k: rows,
          transposeA: !f.transposeA,
          transposeB: false,
          aOffset: aOff,
          bOffset: dyOff,
          aBatchStride: f.aBatchStride,
          bBatchStride: dyStride,
          batch: 1,
        };
  };
  if (f.bBatchStride !== 0) {
    // One dB per batch item.
    await runTiled(ctx, { ...item(0, f.m, f.accumulate), batch: f.batch, cOffset: 0 }, tiling);
    return;
  }
  if (!f.transposeA) {
    // A [batch, m, k] is one [batch·m, k] matrix, dY one [batch·m, n]: the batch sum is one longer reduction.
    await runTiled(ctx, item(0, f.batch * f.m, f.accumulate), tiling);
    return;
  }
  // Transposed A items do not concatenate along m: one launch per item, accumulating after the first.
  for (let z = 0; z < f.batch; z++) await runTiled(ctx, item(z, f.m, f.accumulate || z > 0), tiling);
}

/** dbias[c] (+)= Σ_r dy[r, c] over a [rows, cols] gradient: the column sums of the output gradient. */
export function biasGradient(
  ctx: KernelContext,
  args: { dy: GPUBuffer; dbias: GPUBuffer; rows: number; cols: number; accumulate?: boolean },
): Promise<void> {
  return mapReduce(ctx, {
    op: 'matmul.dbias',
    inputs: [{ name: 'dy', buffer: args.dy, shape: [args.rows, args.cols] }],
    map: 'dy',
    shape: [args.rows, args.cols],
    out: args.dbias,
    outShape: [1, args.cols],
    accumulate: args.accumulate,
  });
}

export interface LinearArgs {
  /** [rows, inFeatures]. */
  x: GPUBuffer;
  /** [outFeatures, inFeatures], as PyTorch's nn.Linear stores it. */
  weight: GPUBuffer;
  /** [outFeatures]. */
  bias?: GPUBuffer;
  /** [rows, outFeatures]. */
  out: GPUBuffer;
  rows: number;
  inFeatures: number;
  outFeatures: number;
  dtype?: MatmulDType;
  /** The weight holds f16 halves (frozen weights beside f32 activations; see MatmulArgs.bF16). */
  weightF16?: boolean;
}

/** y = x·Wᵀ + b. */
export function linear(ctx: KernelContext, args: LinearArgs): Promise<void> {
  return matmul(ctx, {
    a: args.x,
    b: args.weight,
    bias: args.bias,
    out: args.out,
    m: args.rows,
    n: args.outFeatures,
    k: args.inFeatures,
    transposeB: true,
    dtype: args.dtype,
    bF16: args.weightF16,
  });
}

export interface LinearBackwardArgs {
  x: GPUBuffer;
  weight: GPUBuffer;
  /** [rows, outFeatures]. */
  dy: GPUBuffer;
  /** [rows, inFeatures]. */
  dx?: GPUBuffer;
  /** [outFeatures, inFeatures]. */
  dWeight?: GPUBuffer;
  /** [outFeatures]. f32 only. */
  dBias?: GPUBuffer;
  rows: number;
  inFeatures: number;
  outFeatures: number;
  /** Add into dWeight and dBias (gradient accumulation over micro-batches). */
  accumulate?: boolean;
  /** Add into dx (x feeds several layers, e.g. the q/k/v projections). */
  accumulateDx?: boolean;
  dtype?: MatmulDType;
  /** The weight holds f16 halves: dx only (a frozen weight has no dWeight). */
  weightF16?: boolean;
}

/** dx = dy·W, dW = dyᵀ·x, db = column sums of dy; each only when its buffer is given. */
export async function linearBackward(ctx: KernelContext, args: LinearBackwardArgs): Promise<void> {
  if (args.weightF16 && args.dWeight) throw new Error('linearBackward: an f16 weight is frozen (no dWeight)');
  const shape = {
    m: args.rows,
    n: args.outFeatures,
    k: args.inFeatures,
    transposeB: true,
    dtype: args.dtype,
  };
  if (args.dx) {
    await matmulBackward(ctx, {
      ...shape,
      a: args.x,
      b: args.weight,
      dy: args.dy,
      da: args.dx,
      accumulate: args.accumulateDx,
      bF16: args.weightF16,
    });
  }
  if (args.dWeight || args.dBias) {
    await matmulBackward(ctx, {
      ...shape,
      a: args.x,
      b: args.weight,
      dy: args.dy,
      db: args.dWeight,
      dbias: args.dBias,
      accumulate: args.accumulate,
    });
  }
}
