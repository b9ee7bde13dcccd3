// conv2d (NCHW, weight [Cout, Cin, kh, kw] as in PyTorch/diffusers, zero padding) forward and backward as
// implicit GEMMs: operand tiles are gathered straight from the tensors into workgroup memory, no im2col buffer.
import {
  ceilDiv,
  dispatchFor,
  getPipeline,
  launch,
  uniformBuffer,
  WGSL_FLAT_WORKGROUP,
  type KernelContext,
} from './common';

export interface Conv2dShape {
  batch: number;
  cin: number;
  h: number;
  w: number;
  cout: number;
  kh: number;
  kw: number;
  stride: number;
  pad: number;
}

/** Output extent of one spatial dimension (PyTorch's formula without dilation). */
export function conv2dOutputSize(h: number, kh: number, stride: number, pad: number): number {
  return Math.floor((h + 2 * pad - kh) / stride) + 1;
}

const WG = 256;
/** Threads of a GEMM workgroup form a 16×16 grid; each computes TM×TN outputs strided by 16. */
const GRID = 16;
/** Reduction depth of one tile step. */
const BK = 16;

/**
 * One implicit GEMM C[M×N] = A[M×K]·B[K×N]: `loaders` defines loadA(m, k), loadB(k, n) (called only in
 * bounds) and storeC(m, n, v). `aFastM`/`bFastN` choose which index consecutive threads walk when filling
 * a tile, so that global reads are contiguous for the tensor's layout; stores walk m fastest.
 */
interface GemmSpec {
  op: string;
  bindings: string;
  loaders: string;
  aFastM: boolean;
  bFastN: boolean;
}

/** Per-thread outputs along a dimension of size n: small dimensions get narrow tiles instead of idle lanes. */
function tileWidth(n: number): number {
  return n <= GRID ? 1 : n <= 2 * GRID ? 2 : 4;
}

/** WGSL: x[b, ci, oy·s − p + ky, ox·s − p + kx] with zero padding, kr = ky·KW + kx (the implicit im2col). */
const WGSL_INPUT_TAP = /* wgsl */ `
fn inputTap(b: u32, ci: u32, oy: u32, ox: u32, kr: u32) -> f32 {
  let ky = kr / KW;
  let kx = kr - ky * KW;
  let iy = i32(oy * STRIDE + ky) - PAD;
  let ix = i32(ox * STRIDE + kx) - PAD;
  if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) { return 0.0; }
  return x[((b * p.cin + ci) * p.h + u32(iy)) * p.w + u32(ix)];
}`;

function gemmShader(s: Conv2dShape, spec: GemmSpec, tm: number, tn: number): string {
  const bm = GRID * tm;
  const bn = GRID * tn;
  const fill = (
    tile: string,
    fastOuter: boolean,
    outer: string,
    rowStride: string,
    count: number,
    load: string,
  ) => `
    for (var i = 0u; i < ${count}u; i++) {
      let e = t + i * ${WG}u;
      let ${outer}l = ${fastOuter ? `e % ${outer === 'm' ? 'BM' : 'BN'}` : `e / BK`};
      let kl = ${fastOuter ? `e / ${outer === 'm' ? 'BM' : 'BN'}` : `e % BK`};
      let ${outer} = ${outer}0 + ${outer}l;
      let k = k0 + kl;
      var v = 0.0;
      if (${outer} < p.${outer.toUpperCase()} && k < p.K) { v = ${load}; }
      ${tile}[kl * ${rowStride} + ${outer}l] = v;
    }`;
  const idx = (n: number) => Array.from({ length: n }, (_, i) => i);
  const accs = idx(tm).flatMap((i) => idx(tn).map((j) => `c${i}_${j}`));
  return /* wgsl */ `
${WGSL_FLAT_WORKGROUP}
struct Params {
  batch: u32, cin: u32, h: u32, w: u32,
  cout: u32, ho: u32, wo: u32, accumulate: u32,
  M: u32, N: u32, K: u32, tilesN: u32,
  tiles: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
${spec.bindings}
const KH = ${s.kh}u;
const KW = ${s.kw}u;
const KK = ${s.kh * s.kw}u;
const STRIDE = ${s.stride}u;
const PAD = ${s.pad};
const BK = ${BK}u;
const BM = ${bm}u;
const BN = ${bn}u;
// +1 padding: a tile filled k-fastest would otherwise hit one bank per column.
const AS = ${bm + 1}u;
const BS = ${bn + 1}u;
var<workgroup> tileA: array<f32, ${BK * (bm + 1)}>;
var<workgroup> tileB: array<f32, ${BK * (bn + 1)}>;

${spec.loaders}

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let tile = flatWorkgroupIndex(wid, nwg);
  if (tile >= p.tiles) { return; }
  let m0 = (tile / p.tilesN) * BM;
  let n0 = (tile % p.tilesN) * BN;
  let tm = t % ${GRID}u;
  let tn = t / ${GRID}u;
  ${accs.map((c) => `var ${c} = 0.0;`).join(' ')}
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    ${fill('tileA', spec.aFastM, 'm', 'AS', tm, 'loadA(m, k)')}
    ${fill('tileB', spec.bFastN, 'n', 'BS', tn, 'loadB(k, n)')}
    workgroupBarrier();
    for (var kl = 0u; kl < BK; kl++) {
      ${idx(tm)
        .map((i) => `let a${i} = tileA[kl * AS + tm + ${i * GRID}u];`)
        .join(' ')}
      ${idx(tn)
        .map((j) => `let b${j} = tileB[kl * BS + tn + ${j * GRID}u];`)
        .join(' ')}
      ${idx(tm)
        .flatMap((i) => idx(tn).map((j) => `c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});`))
        .join('\n      ')}
    }
    workgroupBarrier();
  }
  ${idx(tm)
    .flatMap((i) =>
      idx(tn).map(
        (j) => `{
    let m = m0 + tm + ${i * GRID}u;
    let n = n0 + tn + ${j * GRID}u;
    if (m < p.M && n < p.N) { storeC(m, n, c${i}_${j}); }
  }`,
      ),
    )
    .join('\n  ')}
}
`;
}

function checkShape(op: string, s: Conv2dShape): { ho: number; wo: number } {
  const ho = conv2dOutputSize(s.h, s.kh, s.stride, s.pad);
  const wo = conv2dOutputSize(s.w, s.kw, s.stride, s.pad);
  const dims = [s.batch, s.cin, s.h, s.w, s.cout, s.kh, s.kw, s.stride];
  if (
    dims.some((d) => !Number.isInteger(d) || d < 1) ||
    !Number.isInteger(s.pad) ||
    s.pad < 0 ||
    ho < 1 ||
    wo < 1
  ) {
    throw new Error(`${op}: invalid shape ${JSON.stringify(s)} (output ${ho}×${wo})`);
  }
  return { ho, wo };
}

async function runGemm(
  ctx: KernelContext,
  s: Conv2dShape,
  spec: GemmSpec,
  dims: { M: number; N: number; K: number },
  buffers: GPUBuffer[],
  accumulate: boolean,
): Promise<void> {
  const { ho, wo } = checkShape(spec.op, s);
  const tm = tileWidth(dims.M);
  const tn = tileWidth(dims.N);
  const tilesN = ceilDiv(dims.N, GRID * tn);
  const tiles = ceilDiv(dims.M, GRID * tm) * tilesN;
  const label = `${spec.op}[k${s.kh}x${s.kw} s${s.stride} p${s.pad} t${tm}x${tn}]`;
  const pipeline = await getPipeline(ctx, label, gemmShader(s, spec, tm, tn));
  const params = uniformBuffer(ctx, label, [
    s.batch,
    s.cin,
    s.h,
    s.w,
    s.cout,
    ho,
    wo,
    accumulate ? 1 : 0,
    dims.M,
    dims.N,
    dims.K,
    tilesN,
    tiles,
  ]);
  launch(ctx, { label, pipeline, buffers: [params, ...buffers], workgroups: dispatchFor(ctx, tiles) }, [
    params,
  ]);
}

/** out[b, co, oy, ox] = bias[co] + Σ weight[co, ci, ky, kx] · x[b, ci, oy·s − p + ky, ox·s − p + kx]. */
export async function conv2d(
  ctx: KernelContext,
  args: Conv2dShape & { x: GPUBuffer; weight: GPUBuffer; bias?: GPUBuffer; out: GPUBuffer },
): Promise<void> {
  const { ho, wo } = checkShape('conv2d.forward', args);
  const hasBias = args.bias !== undefined;
  // GEMM: m = output pixel (b, oy, ox), n = co, k = (ci, ky, kx) — the weight row is already [co][k].
  const spec: GemmSpec = {
    op: hasBias ? 'conv2d.forward.bias' : 'conv2d.forward',
    aFastM: true,
    bFastN: false,
    bindings: `
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${hasBias ? '@group(0) @binding(4) var<storage, read> bias: array<f32>;' : ''}`,
    loaders: `${WGSL_INPUT_TAP}
fn loadA(m: u32, k: u32) -> f32 {
  let pix = p.ho * p.wo;
  let b = m / pix;
  let r = m - b * pix;
  let oy = r / p.wo;
  let ci = k / KK;
  return inputTap(b, ci, oy, r - oy * p.wo, k - ci * KK);
}
fn loadB(k: u32, n: u32) -> f32 { return weight[n * p.K + k]; }
fn storeC(m: u32, n: u32, v: f32) {
  let pix = p.ho * p.wo;
  let b = m / pix;
  out[(b * p.cout + n) * pix + m - b * pix] = v${hasBias ? ' + bias[n]' : ''};
}`,
  };
  const buffers = [args.x, args.weight, args.out, ...(args.bias ? [args.bias] : [])];
  const K = args.cin * args.kh * args.kw;
  await runGemm(ctx, args, spec, { M: args.batch * ho * wo, N: args.cout, K }, buffers, false);
}

/**
 * dx[b, ci, iy, ix] (+)= Σ_{co, ky, kx} dy[b, co, oy, ox] · weight[co, ci, ky, kx] over the taps with
 * oy·s = iy + p − ky (likewise x): the transposed convolution. For stride > 1 the taps that do not divide
 * evenly load zeros, so stride 2 costs 4× the useful work (acceptable: only downsamplers use it).
 */
export async function conv2dBackwardInput(
  ctx: KernelContext,
  args: Conv2dShape & { dy: GPUBuffer; weight: GPUBuffer; dx: GPUBuffer; accumulate?: boolean },
): Promise<void> {
  // GEMM: m = input pixel (b, iy, ix), n = ci, k = (co, ky, kx).
  const spec: GemmSpec = {
    op: 'conv2d.backwardInput',
    aFastM: true,
    bFastN: false,
    bindings: `
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
`,
    loaders: `
fn loadA(m: u32, k: u32) -> f32 {
  let pix = p.h * p.w;
  let b = m / pix;
  let r = m - b * pix;
  let iy = r / p.w;
  let ix = r - iy * p.w;
  let co = k / KK;
  let kr = k - co * KK;
  let ky = kr / KW;
  let ty = i32(iy) + PAD - i32(ky);
  let tx = i32(ix) + PAD - i32(kr - ky * KW);
  if (ty < 0 || tx < 0) { return 0.0; }
  let oy = u32(ty) / STRIDE;
  let ox = u32(tx) / STRIDE;
  if (oy * STRIDE != u32(ty) || ox * STRIDE != u32(tx) || oy >= p.ho || ox >= p.wo) { return 0.0; }
  return dy[((b * p.cout + co) * p.ho + oy) * p.wo + ox];
}
fn loadB(k: u32, n: u32) -> f32 {
  let co = k / KK;
  return weight[(co * p.cin + n) * KK + k - co * KK];
}
fn storeC(m: u32, n: u32, v: f32) {
  let pix = p.h * p.w;
  let b = m / pix;
  let i = (b * p.cin + n) * pix + m - b * pix;
  if (p.accumulate != 0u) { dx[i] += v; } else { dx[i] = v; }
}`,
  };
  const K = args.cout * args.kh * args.kw;
  const dims = { M: args.batch * args.h * args.w, N: args.cin, K };
  await runGemm(ctx, args, spec, dims, [args.dy, args.weight, args.dx], args.accumulate ?? false);
}

/** dweight[co, ci, ky, kx] (+)= Σ_{b, oy, ox} dy[b, co, oy, ox] · x[b, ci, oy·s − p + ky, ox·s − p + kx]. */
export async function conv2dBackwardWeight(
  ctx: KernelContext,
  args: Conv2dShape & { dy: GPUBuffer; x: GPUBuffer; dweight: GPUBuffer; accumulate?: boolean },
): Promise<void> {
  const { ho, wo } = checkShape('conv2d.backwardWeight', args);
  // GEMM: m = (ci, ky, kx), n = co, k = output pixel (b, oy, ox); m-fastest stores are contiguous in dweight.
  const spec: GemmSpec = {
    op: 'conv2d.backwardWeight',
    aFastM: false,
    bFastN: false,
    bindings: `
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dweight: array<f32>;`,
    loaders: `${WGSL_INPUT_TAP}
fn loadA(m: u32, k: u32) -> f32 {
  let pix = p.ho * p.wo;
  let b = k / pix;
  let r = k - b * pix;
  let oy = r / p.wo;
  let ci = m / KK;
  return inputTap(b, ci, oy, r - oy * p.wo, m - ci * KK);
}
fn loadB(k: u32, n: u32) -> f32 {
  let pix = p.ho * p.wo;
  let b = k / pix;
  return dy[(b * p.cout + n) * pix + k - b * pix];
}
fn storeC(m: u32, n: u32, v: f32) {
  let i = n * p.M + m;
  if (p.accumulate != 0u) { dweight[i] += v; } else { dweight[i] = v; }
}`,
  };
  const dims = { M: args.cin * args.kh * args.kw, N: args.cout, K: args.batch * ho * wo };
  await runGemm(ctx, args, spec, dims, [args.dy, args.x, args.dweight], args.accumulate ?? false);
}

const biasShader = /* wgsl */ `
${WGSL_FLAT_WORKGROUP}
struct Params { batch: u32, cout: u32, pix: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dbias: array<f32>;
var<workgroup> partial: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let co = flatWorkgroupIndex(wid, nwg);
  if (co >= p.cout) { return; }
  var s = 0.0;
  for (var b = 0u; b < p.batch; b++) {
    let base = (b * p.cout + co) * p.pix;
    for (var r = t; r < p.pix; r += ${WG}u) { s += dy[base + r]; }
  }
  partial[t] = s;
  workgroupBarrier();
  for (var span = ${WG / 2}u; span > 0u; span >>= 1u) {
    if (t < span) { partial[t] += partial[t + span]; }
    workgroupBarrier();
  }
  if (t == 0u) {
    if (p.accumulate != 0u) { dbias[co] += partial[0]; } else { dbias[co] = partial[0]; }
  }
}
`;

/** dbias[co] (+)= Σ_{b, oy, ox} dy[b, co, oy, ox]; one workgroup per output channel. */
export async function conv2dBackwardBias(
  ctx: KernelContext,
  args: Conv2dShape & { dy: GPUBuffer; dbias: GPUBuffer; accumulate?: boolean },
): Promise<void> {
  const { ho, wo } = checkShape('conv2d.backwardBias', args);
  const label = 'conv2d.backwardBias';
  const pipeline = await getPipeline(ctx, label, biasShader);
  const params = uniformBuffer(ctx, label, [args.batch, args.cout, ho * wo, args.accumulate ? 1 : 0]);
  launch(
    ctx,
    { label, pipeline, buffers: [params, args.dy, args.dbias], workgroups: dispatchFor(ctx, args.cout) },
    [params],
  );
}
