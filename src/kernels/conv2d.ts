// conv2d (NCHW, weight [Cout, Cin, kh, kw] as in PyTorch/diffusers, zero padding) forward and backward as
// implicit GEMMs: operand tiles are gathered straight from the tensors into workgroup memory, no im2col buffer.
import {
  ceilDiv,
  dispatchFor,
  getPipeline,
  launch,
  uniformBuffer,
  WGSL_FLAT_WORKGROUP,
  type ConvSizes,
  type KernelContext,
} from './common';

export interface Conv2dShape {
  /** Sizes baked into the pipeline (default) or read from a uniform (shapes that change, e.g. with a LoRA² rank). */
  sizes?: ConvSizes;
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
/** Threads of a GEMM workgroup form a 16×16 grid; each computes 4 rows × TN columns of C. */
const GRID = 16;
/** Rows of C per workgroup tile. */
const BM = 4 * GRID;
/** Reduction depth of one tile step. */
const BK = 16;

/**
 * One implicit GEMM C[M×N] = A[M×K]·B[K×N]. `loaders` defines, in WGSL:
 *   aRow(m) -> ARow, loadA(row: ARow, k) -> f32   (A[m, k]; the row part of the index math, done once)
 *   bRow(n) -> BRow, loadB(row: BRow, k) -> f32   (B[k, n])
 *   cRow(m) -> u32, storeC(row, n, v)          (C[m, n] = v; cRow once per row a thread stores)
 * loadA/loadB are called only in bounds. Each thread fills the same tile rows at every k step, so aRow and
 * bRow run once per thread, outside the reduction loop. `aFastM`/`bFastN` choose which index consecutive
 * threads walk when filling a tile, so that global reads are contiguous.
 */
interface GemmSpec {
  op: string;
  /** Storage bindings 0…n−1; the sizes uniform takes binding n. */
  bindings: string;
  loaders: string;
  aFastM: boolean;
  bFastN: boolean;
}

/** What stays a WGSL constant in every pipeline: the kernel window, stride and padding. */
type ConvKernel = Pick<Conv2dShape, 'kh' | 'kw' | 'stride' | 'pad'>;

/** Sizes of one GEMM launch: output extent, GEMM dimensions, columns per thread and tile counts. */
interface GemmGeometry {
  ho: number;
  wo: number;
  M: number;
  N: number;
  K: number;
  tn: number;
  tilesN: number;
  tiles: number;
}

/** Columns of C per thread for N = n: small N (e.g. conv_out's 4 channels) gets narrow tiles, not idle lanes. */
function tileWidth(n: number): number {
  return n <= GRID ? 1 : n <= 2 * GRID ? 2 : 4;
}

/** WGSL: x at (iy, ix) of the image plane starting at `base`, zero outside it (the padding). */
const WGSL_INPUT_AT = /* wgsl */ `
fn inputAt(base: u32, iy: i32, ix: i32) -> f32 {
  if (iy < 0 || ix < 0 || iy >= i32(S.h) || ix >= i32(S.w)) { return 0.0; }
  return x[base + u32(iy) * S.w + u32(ix)];
}`;

/**
 * WGSL: the weight binding and weightAt(i), its element i as f32. f16 weights are packed halves, two per u32
 * (element i is half i & 1 of word i / 2), read with core WGSL's unpack2x16float: no shader-f16 needed.
 */
function wgslWeight(half: boolean): string {
  return half
    ? `@group(0) @binding(1) var<storage, read> weight: array<u32>;
fn weightAt(i: u32) -> f32 { return unpack2x16float(weight[i >> 1u])[i & 1u]; }`
    : `@group(0) @binding(1) var<storage, read> weight: array<f32>;
fn weightAt(i: u32) -> f32 { return weight[i]; }`;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * WGSL that fills one operand tile. Thread t loads elements e = t + i·WG (i < count) of the BK×span tile;
 * which row (m or n) and which k offset each element has depends only on t and i (WG is a multiple of span and
 * of BK), hence `setup` (once) and `load` (every k step).
 */
function tileFill(operand: 'A' | 'B', fastOuter: boolean, span: number, count: number, vec: boolean) {
  const lower = operand.toLowerCase();
  const outer = operand === 'A' ? 'm' : 'n';
  const setup = range(count).map((i) => {
    const e = `(t + ${i * WG}u)`;
    return [
      `let ${lower}l${i} = ${fastOuter ? `${e} % ${span}u` : `${e} / BK`};`,
      `let ${lower}k${i} = ${fastOuter ? `${e} / ${span}u` : `${e} % BK`};`,
      `let ${lower}ok${i} = ${outer}0 + ${lower}l${i} < S.${outer};`,
      `let ${lower}r${i} = ${lower}Row(${outer}0 + ${lower}l${i});`,
    ].join('\n  ');
  });
  const load = range(count).map(
    (i) => `{
      let k = k0 + ${lower}k${i};
      var v = 0.0;
      if (${lower}ok${i} && k < S.k) { v = load${operand}(${lower}r${i}, k); }
      ${
        vec
          ? `tile${operand}[${lower}k${i} * ${span / 4}u + ${lower}l${i} / 4u][${lower}l${i} % 4u] = v;`
          : `tile${operand}[${lower}k${i} * ${span}u + ${lower}l${i}] = v;`
      }
    }`,
  );
  return { setup: setup.join('\n  '), load: load.join('\n    ') };
}

/** Sizes of one launch as the WGSL struct `S` sees them (field order = uniform layout). */
const SIZE_FIELDS = ['batch', 'cin', 'h', 'w', 'cout', 'ho', 'wo', 'm', 'n', 'k', 'tilesN'] as const;
type Sizes = Record<(typeof SIZE_FIELDS)[number], number>;

function sizesOf(s: Conv2dShape, g: GemmGeometry): Sizes {
  const { batch, cin, h, w, cout } = s;
  return { batch, cin, h, w, cout, ho: g.ho, wo: g.wo, m: g.M, n: g.N, k: g.K, tilesN: g.tilesN };
}

/**
 * The kernel's WGSL. Sizes reach it as the struct `S`. Given `sizes` (baked, the default), `S` is a module constant
 * and the compiler folds every size, e.g. divisions into multiply-shifts: one pipeline per shape, the fastest code.
 * Without, `S` comes from a uniform: one pipeline serves every conv with the same window, stride, padding and tile
 * width, so a LoRA² conv adapter whose rank changes compiles nothing new (each compile costs seconds on a software
 * adapter with a cold shader cache), at 5–13% more time per launch on lavapipe (BENCHMARKS.md, "Conv sizes as a
 * uniform"). The uniform is copied into a private `S` once, which measured a little faster there than reading it
 * in the loop; the loop bound reads the uniform itself, because WGSL's uniformity analysis counts private variables
 * as non-uniform and the loop holds barriers. The divisions in the reduction loop are by KK, KW and STRIDE,
 * constants either way, except the weight gradient's, which divide by the output size.
 */
function gemmShader(
  g: GemmGeometry,
  spec: GemmSpec & { uniformBinding: number },
  kernel: ConvKernel,
  accumulate: boolean,
  sizes?: Sizes,
): string {
  const { tn } = g;
  const bn = GRID * tn;
  // Each thread owns 4 consecutive rows (one vec4 of A) and tn columns: a vec4 of B when tn = 4 (contiguous
  // columns), else tn scalars strided by 16. vec4 tile reads keep workgroup-memory traffic per FMA low.
  const bVec = tn === 4;
  const a = tileFill('A', spec.aFastM, BM, (BK * BM) / WG, true);
  const b = tileFill('B', spec.bFastN, bn, (BK * bn) / WG, bVec);
  const cols = range(tn);
  const column = (j: number) => (bVec ? `n0 + 4u * tn + ${j}u` : `n0 + tn + ${j * GRID}u`);
  const bLoads = bVec
    ? `let b = tileB[kl * ${bn / 4}u + tn];`
    : cols.map((j) => `let b${j} = tileB[kl * ${bn}u + tn + ${j * GRID}u];`).join(' ');
  const bScalar = (j: number) => (bVec ? `b.${'xyzw'[j]}` : `b${j}`);
  const struct = `struct Sizes { ${SIZE_FIELDS.map((f) => `${f}: u32`).join(', ')} }`;
  const sizeDecl = sizes
    ? `const S = Sizes(${SIZE_FIELDS.map((f) => `${sizes[f]}u`).join(', ')});`
    : `@group(0) @binding(${spec.uniformBinding}) var<uniform> sizesIn: Sizes;
var<private> S: Sizes;`;
  return /* wgsl */ `
${WGSL_FLAT_WORKGROUP}
${spec.bindings}
${struct}
${sizeDecl}
const ACCUMULATE = ${accumulate};
const KH = ${kernel.kh}u;
const KW = ${kernel.kw}u;
const KK = ${kernel.kh * kernel.kw}u;
const STRIDE = ${kernel.stride}u;
const PAD = ${kernel.pad};
const BK = ${BK}u;
const BM = ${BM}u;
const BN = ${bn}u;
var<workgroup> tileA: array<vec4<f32>, ${(BK * BM) / 4}>;
var<workgroup> tileB: array<${bVec ? 'vec4<f32>' : 'f32'}, ${bVec ? (BK * bn) / 4 : BK * bn}>;
${spec.loaders}

@compute @workgroup_size(${GRID}, ${GRID})
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  // A surplus workgroup of a folded dispatch has m0 ≥ M, so all its loads and stores are masked; no early
  // return, which costs software adapters a slower barrier path.
  ${sizes ? '' : 'S = sizesIn;'}
  // From the uniform, not the private copy: barriers inside the loop need a uniform bound.
  let kEnd = ${sizes ? 'S.k' : 'sizesIn.k'};
  let tile = flatWorkgroupIndex(wid, nwg);
  let m0 = (tile / S.tilesN) * BM;
  let n0 = (tile % S.tilesN) * BN;
  let tm = t % ${GRID}u;
  let tn = t / ${GRID}u;
  ${a.setup}
  ${b.setup}
  ${cols.map((j) => `var c${j} = vec4<f32>(0.0);`).join(' ')}
  for (var k0 = 0u; k0 < kEnd; k0 += BK) {
    ${a.load}
    ${b.load}
    workgroupBarrier();
    for (var kl = 0u; kl < BK; kl++) {
      let a = tileA[kl * ${BM / 4}u + tm];
      ${bLoads}
      ${cols.map((j) => `c${j} = fma(a, vec4<f32>(${bScalar(j)}), c${j});`).join('\n      ')}
    }
    workgroupBarrier();
  }
  ${range(4)
    .map((r) => `let cm${r} = m0 + 4u * tm + ${r}u; let cr${r} = cRow(cm${r});`)
    .join('\n  ')}
  ${cols
    .flatMap((j) =>
      range(4).map(
        (r) => `{
    let n = ${column(j)};
    if (cm${r} < S.m && n < S.n) { storeC(cr${r}, n, c${j}.${'xyzw'[r]}); }
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
  const bad = dims.some((d) => !Number.isInteger(d) || d < 1) || !Number.isInteger(s.pad) || s.pad < 0;
  if (bad || ho < 1 || wo < 1) {
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
  const tn = tileWidth(dims.N);
  const tilesN = ceilDiv(dims.N, GRID * tn);
  const tiles = ceilDiv(dims.M, BM) * tilesN;
  const g: GemmGeometry = { ho, wo, ...dims, tn, tilesN, tiles };
  const sizes = sizesOf(s, g);
  const kernel = `k${s.kh}x${s.kw} s${s.stride} p${s.pad}`;
  const shape = `${s.batch}x${s.cin}x${s.h}x${s.w}→${s.cout} ${kernel}`;
  const op = `${spec.op}${accumulate ? '.accumulate' : ''}`;
  const label = `${op}[${shape}]`;
  const baked = (ctx.convSizes ?? s.sizes ?? 'baked') === 'baked';
  const pipelineLabel = baked ? label : `${op}[${kernel} tn${tn}]`;
  const code = gemmShader(
    g,
    { ...spec, uniformBinding: buffers.length },
    s,
    accumulate,
    baked ? sizes : undefined,
  );
  const pipeline = await getPipeline(ctx, pipelineLabel, code);
  if (baked) {
    launch(ctx, { label, pipeline, buffers, workgroups: dispatchFor(ctx, tiles) });
  } else {
    const params = uniformBuffer(
      ctx,
      label,
      SIZE_FIELDS.map((f) => sizes[f]),
    );
    launch(ctx, { label, pipeline, buffers: [...buffers, params], workgroups: dispatchFor(ctx, tiles) }, [
      params,
    ]);
  }
}

/** out[b, co, oy, ox] = bias[co] + Σ weight[co, ci, ky, kx] · x[b, ci, oy·s − p + ky, ox·s − p + kx]. */
export async function conv2d(
  ctx: KernelContext,
  args: Conv2dShape & {
    x: GPUBuffer;
    weight: GPUBuffer;
    bias?: GPUBuffer;
    out: GPUBuffer;
    /** The weight holds f16 halves (frozen weights beside f32 activations). */
    weightF16?: boolean;
  },
): Promise<void> {
  const { ho, wo } = checkShape('conv2d.forward', args);
  const hasBias = args.bias !== undefined;
  const half = args.weightF16 ?? false;
  // GEMM: m = output pixel (b, oy, ox), n = co, k = (ci, ky, kx) — a weight row is already [co][k].
  const spec: GemmSpec = {
    op: `conv2d.forward${hasBias ? '.bias' : ''}${half ? '.whalf' : ''}`,
    aFastM: true,
    bFastN: false,
    bindings: `
@group(0) @binding(0) var<storage, read> x: array<f32>;
${wgslWeight(half)}
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${hasBias ? '@group(0) @binding(3) var<storage, read> bias: array<f32>;' : ''}`,
    loaders: `${WGSL_INPUT_AT}
/** Output pixel m: its sample's input base and the top-left input position of its receptive field. */
struct ARow { base: u32, iy: i32, ix: i32 }
fn aRow(m: u32) -> ARow {
  let b = m / (S.ho * S.wo);
  let r = m - b * S.ho * S.wo;
  let oy = r / S.wo;
  return ARow(b * S.cin * S.h * S.w, i32(oy * STRIDE) - PAD, i32((r - oy * S.wo) * STRIDE) - PAD);
}
fn loadA(r: ARow, k: u32) -> f32 {
  let ci = k / KK;
  let kr = k - ci * KK;
  let ky = kr / KW;
  return inputAt(r.base + ci * S.h * S.w, r.iy + i32(ky), r.ix + i32(kr - ky * KW));
}
alias BRow = u32;
fn bRow(n: u32) -> BRow { return n * S.k; }
fn loadB(r: BRow, k: u32) -> f32 { return weightAt(r + k); }
fn cRow(m: u32) -> u32 {
  let b = m / (S.ho * S.wo);
  return b * S.cout * S.ho * S.wo + m - b * S.ho * S.wo;
}
fn storeC(row: u32, n: u32, v: f32) {
  out[row + n * S.ho * S.wo] = v${hasBias ? ' + bias[n]' : ''};
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
  args: Conv2dShape & {
    dy: GPUBuffer;
    weight: GPUBuffer;
    dx: GPUBuffer;
    accumulate?: boolean;
    /** The weight holds f16 halves. */
    weightF16?: boolean;
  },
): Promise<void> {
  const half = args.weightF16 ?? false;
  // GEMM: m = input pixel (b, iy, ix), n = ci, k = (co, ky, kx).
  const spec: GemmSpec = {
    op: `conv2d.backwardInput${half ? '.whalf' : ''}`,
    aFastM: true,
    bFastN: false,
    bindings: `
@group(0) @binding(0) var<storage, read> dy: array<f32>;
${wgslWeight(half)}
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;`,
    loaders: `
/** Input pixel m: its sample's dy base and its padded position (iy + p, ix + p). */
struct ARow { base: u32, ty: i32, tx: i32 }
fn aRow(m: u32) -> ARow {
  let b = m / (S.h * S.w);
  let r = m - b * S.h * S.w;
  let iy = r / S.w;
  return ARow(b * S.cout * S.ho * S.wo, i32(iy) + PAD, i32(r - iy * S.w) + PAD);
}
fn loadA(r: ARow, k: u32) -> f32 {
  let co = k / KK;
  let kr = k - co * KK;
  let ky = kr / KW;
  let ty = r.ty - i32(ky);
  let tx = r.tx - i32(kr - ky * KW);
  if (ty < 0 || tx < 0) { return 0.0; }
  let oy = u32(ty) / STRIDE;
  let ox = u32(tx) / STRIDE;
  if (oy * STRIDE != u32(ty) || ox * STRIDE != u32(tx) || oy >= S.ho || ox >= S.wo) { return 0.0; }
  return dy[r.base + (co * S.ho + oy) * S.wo + ox];
}
alias BRow = u32;
fn bRow(n: u32) -> BRow { return n * KK; }
fn loadB(r: BRow, k: u32) -> f32 {
  let co = k / KK;
  return weightAt(co * S.cin * KK + r + k - co * KK);
}
fn cRow(m: u32) -> u32 {
  let b = m / (S.h * S.w);
  return b * S.cin * S.h * S.w + m - b * S.h * S.w;
}
fn storeC(row: u32, n: u32, v: f32) {
  let i = row + n * S.h * S.w;
  if (ACCUMULATE) { dx[i] += v; } else { dx[i] = v; }
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
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dweight: array<f32>;`,
    loaders: `${WGSL_INPUT_AT}
/** Tap m = (ci, ky, kx): its channel plane and its offset from an output pixel's receptive-field origin. */
struct ARow { plane: u32, offY: i32, offX: i32 }
fn aRow(m: u32) -> ARow {
  let ci = m / KK;
  let kr = m - ci * KK;
  let ky = kr / KW;
  return ARow(ci * S.h * S.w, i32(ky) - PAD, i32(kr - ky * KW) - PAD);
}
fn loadA(r: ARow, k: u32) -> f32 {
  let b = k / (S.ho * S.wo);
  let pix = k - b * S.ho * S.wo;
  let oy = pix / S.wo;
  return inputAt(b * S.cin * S.h * S.w + r.plane, i32(oy * STRIDE) + r.offY, i32((pix - oy * S.wo) * STRIDE) + r.offX);
}
alias BRow = u32;
fn bRow(n: u32) -> BRow { return n * S.ho * S.wo; }
fn loadB(r: BRow, k: u32) -> f32 {
  let b = k / (S.ho * S.wo);
  return dy[b * S.cout * S.ho * S.wo + r + k - b * S.ho * S.wo];
}
fn cRow(m: u32) -> u32 { return m; }
fn storeC(row: u32, n: u32, v: f32) {
  let i = n * S.m + row;
  if (ACCUMULATE) { dweight[i] += v; } else { dweight[i] = v; }
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
  const buffers = [params, args.dy, args.dbias];
  launch(ctx, { label, pipeline, buffers, workgroups: dispatchFor(ctx, args.cout) }, [params]);
}
