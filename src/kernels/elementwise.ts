// Elementwise ops generated from one table of WGSL forward/backward expressions: unary activations, binary
// add/sub/mul with numpy broadcasting (backward sums over the broadcast dims), GEGLU, fill and `out += αx`.
import {
  ceilDiv,
  dispatchFor,
  getPipeline,
  launch,
  uniformBuffer,
  WGSL_EXP_FTZ,
  WGSL_FLAT_WORKGROUP,
  type KernelContext,
  type Workgroups,
} from './common';
import { broadcastShapes, mapReduce, numel, padShape, type BroadcastInput } from './reduce';

/** Threads per workgroup of the flat (one thread per element) kernels. */
export const FLAT_WG = 256;

/** Workgroups for a flat kernel over n elements, folded past the per-dimension limit. */
export function flatDispatch(ctx: KernelContext, n: number): Workgroups {
  return dispatchFor(ctx, ceilDiv(n, FLAT_WG));
}

/** WGSL entry point of a flat kernel: `body` runs with `let i: u32` for every i < `bound`. */
export function wgslFlatMain(body: string, bound = 'params.n'): string {
  return /* wgsl */ `${WGSL_FLAT_WORKGROUP}
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = flatWorkgroupIndex(wid, nwg) * ${FLAT_WG}u + lid;
  if (i >= ${bound}) {
    return;
  }
  ${body}
}`;
}

/**
 * WGSL math the expressions use. Every exp() gets a non-positive or clamped argument: WGSL lets an
 * implementation assume no infinities, so overflow must not happen even where the limit would be right; and
 * none underflows into a subnormal float (`expFtz`), which CPU adapters compute slowly.
 */
export const WGSL_ACTIVATIONS = /* wgsl */ `
${WGSL_EXP_FTZ}
fn sigmoid_f(x: f32) -> f32 {
  let e = expFtz(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}
fn silu_grad(x: f32) -> f32 {
  let s = sigmoid_f(x);
  return s * (1.0 + x * (1.0 - s));
}
fn softplus_f(x: f32) -> f32 {
  let e = expFtz(-abs(x));
  // log(1 + e) loses e's digits when e is tiny; the series keeps them.
  let l = select(log(1.0 + e), e * (1.0 - e * (0.5 - e / 3.0)), e < 1e-3);
  return max(x, 0.0) + l;
}
// erfc with fractional error < 1.2e-7 for every x (Numerical Recipes' erfcc, a Chebyshev fit), so the
// normal CDF stays accurate deep in its lower tail where 1 + erf(x) would cancel.
fn erfc_f(x: f32) -> f32 {
  let z = min(abs(x), 10.0);
  let t = 1.0 / (1.0 + 0.5 * z);
  let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  let r = t * expFtz(-z * z + poly);
  return select(2.0 - r, r, x >= 0.0);
}
fn normal_cdf(x: f32) -> f32 {
  return 0.5 * erfc_f(-0.70710678118654752 * x);
}
fn gelu_grad(x: f32) -> f32 {
  let xc = clamp(x, -20.0, 20.0);
  return normal_cdf(x) + x * 0.39894228040143268 * expFtz(-0.5 * xc * xc);
}
// tanh(0.79788456·(x + 0.044715·x³)) and its sech²; x is clamped because the tanh is ±1 in f32 well
// before |x| = 10 and x³ must stay finite. sech² = 4e/(1+e)² avoids the cancellation of 1 − tanh².
fn gelu_tanh_parts(x: f32) -> vec2<f32> {
  let xc = clamp(x, -10.0, 10.0);
  let u = 0.7978845608028654 * (xc + 0.044715 * xc * xc * xc);
  let e = expFtz(-2.0 * abs(u));
  return vec2<f32>(sign(u) * (1.0 - e) / (1.0 + e), 4.0 * e / ((1.0 + e) * (1.0 + e)));
}
fn gelu_tanh(x: f32) -> f32 {
  return 0.5 * x * (1.0 + gelu_tanh_parts(x).x);
}
fn gelu_tanh_grad(x: f32) -> f32 {
  let xc = clamp(x, -10.0, 10.0);
  let p = gelu_tanh_parts(x);
  return 0.5 * (1.0 + p.x) + 0.5 * x * p.y * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * xc * xc);
}`;

interface UnaryDef {
  /** y from x (and the constant alpha). */
  forward: string;
  /** dx from x and dy (and alpha). */
  backward: string;
}

/** Unary ops: gelu is the exact (erf) GELU, gelu_tanh PyTorch's approximate='tanh'; scale multiplies by alpha. */
export const UNARY_OPS = {
  silu: { forward: 'x * sigmoid_f(x)', backward: 'dy * silu_grad(x)' },
  gelu: { forward: 'x * normal_cdf(x)', backward: 'dy * gelu_grad(x)' },
  gelu_tanh: { forward: 'gelu_tanh(x)', backward: 'dy * gelu_tanh_grad(x)' },
  neg: { forward: '-x', backward: '-dy' },
  exp: { forward: 'exp(x)', backward: 'dy * exp(x)' },
  square: { forward: 'x * x', backward: '2.0 * x * dy' },
  scale: { forward: 'alpha * x', backward: 'alpha * dy' },
  sigmoid: { forward: 'sigmoid_f(x)', backward: 'dy * sigmoid_f(x) * (1.0 - sigmoid_f(x))' },
  softplus: { forward: 'softplus_f(x)', backward: 'dy * sigmoid_f(x)' },
} as const satisfies Record<string, UnaryDef>;

export type UnaryOp = keyof typeof UNARY_OPS;

interface BinaryDef {
  forward: string;
  /** Gradients wrt a and b from dy, a, b (each operand read only if named). */
  da: string;
  db: string;
}

export const BINARY_OPS = {
  add: { forward: 'a + b', da: 'dy', db: 'dy' },
  sub: { forward: 'a - b', da: 'dy', db: '-dy' },
  mul: { forward: 'a * b', da: 'dy * b', db: 'dy * a' },
} as const satisfies Record<string, BinaryDef>;

export type BinaryOp = keyof typeof BINARY_OPS;

export interface FlatInput {
  /** WGSL name the expression uses for this operand's element. */
  name: string;
  buffer: GPUBuffer;
  /** A one-element buffer read at index 0 by every thread (e.g. an upstream scalar gradient). */
  scalar?: boolean;
}

/**
 * out[i] = (accumulate ? out[i] : 0) + expr(inputs[i]) for i < n: the one-thread-per-element kernel the
 * table's ops compile to. `out` must not alias an input (WebGPU forbids binding it twice).
 */
export async function mapFlat(
  ctx: KernelContext,
  args: {
    op: string;
    inputs: FlatInput[];
    expr: string;
    out: GPUBuffer;
    n: number;
    alpha?: number;
    accumulate?: boolean;
  },
): Promise<void> {
  if (args.n === 0) return;
  const label = `${args.op}.map`;
  const bindings = args.inputs
    .map((x, k) => `@group(0) @binding(${k}) var<storage, read> in_${x.name}: array<f32>;`)
    .join('\n');
  const loads = args.inputs
    .map((x) => `let ${x.name} = in_${x.name}[${x.scalar ? '0u' : 'i'}];`)
    .join('\n  ');
  const k = args.inputs.length;
  const code = /* wgsl */ `
struct Params { n: u32, accumulate: u32, alpha: f32 }
${bindings}
@group(0) @binding(${k}) var<storage, read_write> out: array<f32>;
@group(0) @binding(${k + 1}) var<uniform> params: Params;
${WGSL_ACTIVATIONS}
${wgslFlatMain(`let alpha = params.alpha;
  ${loads}
  var v = ${args.expr};
  if (params.accumulate != 0u) {
    v += out[i];
  }
  out[i] = v;`)}`;
  const pipeline = await getPipeline(ctx, label, code);
  const params = uniformBuffer(ctx, label, [args.n, args.accumulate ? 1 : 0, args.alpha ?? 0], new Set([2]));
  launch(
    ctx,
    {
      label,
      pipeline,
      buffers: [...args.inputs.map((x) => x.buffer), args.out, params],
      workgroups: flatDispatch(ctx, args.n),
    },
    [params],
  );
}

/** The table's expression for op; scale without its factor would silently give zeros. */
function unaryExpr(args: { op: UnaryOp; alpha?: number }, which: keyof UnaryDef): string {
  if (args.op === 'scale' && args.alpha === undefined) throw new Error('scale needs alpha');
  return UNARY_OPS[args.op][which];
}

/** y = op(x) elementwise over n elements (alpha is scale's factor). */
export async function unary(
  ctx: KernelContext,
  args: { op: UnaryOp; x: GPUBuffer; y: GPUBuffer; n: number; alpha?: number; accumulate?: boolean },
): Promise<void> {
  await mapFlat(ctx, {
    op: args.op,
    inputs: [{ name: 'x', buffer: args.x }],
    expr: unaryExpr(args, 'forward'),
    out: args.y,
    n: args.n,
    alpha: args.alpha,
    accumulate: args.accumulate,
  });
}

/** dx = dy · op'(x). */
export async function unaryBackward(
  ctx: KernelContext,
  args: {
    op: UnaryOp;
    x: GPUBuffer;
    dy: GPUBuffer;
    dx: GPUBuffer;
    n: number;
    alpha?: number;
    accumulate?: boolean;
  },
): Promise<void> {
  await mapFlat(ctx, {
    op: `${args.op}.backward`,
    inputs: [
      { name: 'x', buffer: args.x },
      { name: 'dy', buffer: args.dy },
    ],
    expr: unaryExpr(args, 'backward'),
    out: args.dx,
    n: args.n,
    alpha: args.alpha,
    accumulate: args.accumulate,
  });
}

/** dst += alpha · src over n elements (gradient accumulation). */
export async function addInPlace(
  ctx: KernelContext,
  args: { dst: GPUBuffer; src: GPUBuffer; n: number; alpha?: number },
): Promise<void> {
  await mapFlat(ctx, {
    op: 'addInPlace',
    inputs: [{ name: 'x', buffer: args.src }],
    expr: 'alpha * x',
    out: args.dst,
    n: args.n,
    alpha: args.alpha ?? 1,
    accumulate: true,
  });
}

/** dst[i] = value for i < n. */
export async function fill(
  ctx: KernelContext,
  args: { dst: GPUBuffer; n: number; value: number },
): Promise<void> {
  await mapFlat(ctx, { op: 'fill', inputs: [], expr: 'alpha', out: args.dst, n: args.n, alpha: args.value });
}

/** True when the WGSL expression reads the variable `name`. */
function reads(expr: string, name: string): boolean {
  return new RegExp(`\\b${name}\\b`).test(expr);
}

/**
 * out (shape `outShape`) = Σ over the dims where outShape is 1 of expr(inputs broadcast to `shape`): the
 * flat kernel when nothing is broadcast or reduced, else the broadcasting map-reduce.
 */
async function mapBroadcast(
  ctx: KernelContext,
  args: {
    op: string;
    inputs: BroadcastInput[];
    expr: string;
    shape: readonly number[];
    out: GPUBuffer;
    outShape: readonly number[];
    accumulate?: boolean;
  },
): Promise<void> {
  const full = padShape(args.shape).join();
  const inputs = args.inputs.filter((x) => reads(args.expr, x.name));
  if ([args.outShape, ...inputs.map((x) => x.shape)].every((s) => padShape(s).join() === full)) {
    await mapFlat(ctx, { ...args, inputs, n: numel(args.shape) });
  } else {
    await mapReduce(ctx, { ...args, inputs, map: args.expr });
  }
}

/** out = a ⊕ b with numpy broadcasting (rank ≤ 4); out has shape broadcastShapes(aShape, bShape). */
export async function binary(
  ctx: KernelContext,
  args: {
    op: BinaryOp;
    a: GPUBuffer;
    b: GPUBuffer;
    out: GPUBuffer;
    aShape: readonly number[];
    bShape: readonly number[];
    accumulate?: boolean;
  },
): Promise<void> {
  const shape = broadcastShapes(args.aShape, args.bShape);
  await mapBroadcast(ctx, {
    op: args.op,
    inputs: [
      { name: 'a', buffer: args.a, shape: args.aShape },
      { name: 'b', buffer: args.b, shape: args.bShape },
    ],
    expr: BINARY_OPS[args.op].forward,
    shape,
    out: args.out,
    outShape: shape,
    accumulate: args.accumulate,
  });
}

/**
 * Gradients of out = a ⊕ b: da (shape aShape) and/or db (shape bShape), each summed over the dims its
 * operand was broadcast along. mul needs the other operand (b for da, a for db).
 */
export async function binaryBackward(
  ctx: KernelContext,
  args: {
    op: BinaryOp;
    dy: GPUBuffer;
    a?: GPUBuffer;
    b?: GPUBuffer;
    da?: GPUBuffer;
    db?: GPUBuffer;
    aShape: readonly number[];
    bShape: readonly number[];
    accumulate?: boolean;
  },
): Promise<void> {
  const shape = broadcastShapes(args.aShape, args.bShape);
  const def = BINARY_OPS[args.op];
  const grads = [
    { out: args.da, shape: args.aShape, expr: def.da },
    { out: args.db, shape: args.bShape, expr: def.db },
  ];
  for (const g of grads) {
    if (!g.out) continue;
    const inputs: BroadcastInput[] = [{ name: 'dy', buffer: args.dy, shape }];
    for (const [name, buffer, s] of [
      ['a', args.a, args.aShape],
      ['b', args.b, args.bShape],
    ] as const) {
      if (!reads(g.expr, name)) continue;
      if (!buffer) throw new Error(`${args.op}.backward: gradient ${g.expr} needs operand ${name}`);
      inputs.push({ name, buffer, shape: s });
    }
    await mapBroadcast(ctx, {
      op: `${args.op}.backward`,
      inputs,
      expr: g.expr,
      shape,
      out: g.out,
      outShape: g.shape,
      accumulate: args.accumulate,
    });
  }
}

/** GEGLU (diffusers): x [rows, 2d] = [hidden | gate] → y [rows, d] = hidden · gelu(gate), exact GELU. */
export async function geglu(
  ctx: KernelContext,
  args: { x: GPUBuffer; y: GPUBuffer; rows: number; d: number; accumulate?: boolean },
): Promise<void> {
  await gegluLaunch(
    ctx,
    'geglu',
    [args.x, args.y],
    args,
    /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;`,
    /* wgsl */ `
  var v = h * normal_cdf(g) * g;
  if (params.accumulate != 0u) {
    v += y[i];
  }
  y[i] = v;`,
  );
}

/** GEGLU backward: dx [rows, 2d] from x and dy [rows, d]. */
export async function gegluBackward(
  ctx: KernelContext,
  args: { x: GPUBuffer; dy: GPUBuffer; dx: GPUBuffer; rows: number; d: number; accumulate?: boolean },
): Promise<void> {
  await gegluLaunch(
    ctx,
    'geglu.backward',
    [args.x, args.dy, args.dx],
    args,
    /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;`,
    /* wgsl */ `
  var dh = dy[i] * g * normal_cdf(g);
  var dg = dy[i] * h * gelu_grad(g);
  if (params.accumulate != 0u) {
    dh += dx[hi];
    dg += dx[hi + params.d];
  }
  dx[hi] = dh;
  dx[hi + params.d] = dg;`,
  );
}

/** One thread per output element (r, j): `h`, `g`, and `hi` (the hidden's index in x) are in scope. */
async function gegluLaunch(
  ctx: KernelContext,
  label: string,
  buffers: GPUBuffer[],
  args: { rows: number; d: number; accumulate?: boolean },
  bindings: string,
  body: string,
): Promise<void> {
  const n = args.rows * args.d;
  if (n === 0) return;
  const code = /* wgsl */ `
struct Params { n: u32, d: u32, accumulate: u32 }
${bindings}
@group(0) @binding(${buffers.length}) var<uniform> params: Params;
${WGSL_ACTIVATIONS}
${wgslFlatMain(`let hi = (i / params.d) * 2u * params.d + i % params.d;
  let h = x[hi];
  let g = x[hi + params.d];
  ${body}`)}`;
  const pipeline = await getPipeline(ctx, label, code);
  const params = uniformBuffer(ctx, label, [n, args.d, args.accumulate ? 1 : 0]);
  launch(ctx, { label, pipeline, buffers: [...buffers, params], workgroups: flatDispatch(ctx, n) }, [params]);
}
