// Reductions: one hand-written map-reduce over numpy-broadcast shapes (sum of a WGSL expression of several
// inputs over the dims the output lacks; with nothing to reduce it is a broadcasting elementwise map), and a
// two-pass sum over all elements. Sums over the last axis, the leading axes and everything are thin wrappers.
import {
  ceilDiv,
  dispatchFor,
  getPipeline,
  launch,
  uniformBuffer,
  WGSL_FLAT_WORKGROUP,
  type KernelContext,
} from './common';

/** Threads per workgroup of every reduction kernel. */
export const REDUCE_WG = 256;
/** Highest tensor rank the broadcasting kernels take. */
export const MAX_RANK = 4;

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** `shape` right-aligned into MAX_RANK dims, padded with leading 1s (numpy's alignment). */
export function padShape(shape: readonly number[]): number[] {
  if (shape.length > MAX_RANK) throw new Error(`rank ${shape.length} exceeds ${MAX_RANK}: [${shape}]`);
  return [...new Array<number>(MAX_RANK - shape.length).fill(1), ...shape];
}

/** The numpy broadcast of two shapes; throws on incompatible dims. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`shapes [${a}] and [${b}] do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Element strides of `shape` read as broadcast to `full` (both padded): 0 where the operand has size 1. */
export function broadcastStrides(shape: readonly number[], full: readonly number[]): number[] {
  const s = padShape(shape);
  const f = padShape(full);
  const strides = new Array<number>(MAX_RANK).fill(0);
  let step = 1;
  for (let d = MAX_RANK - 1; d >= 0; d--) {
    if (s[d] !== f[d] && s[d] !== 1) throw new Error(`shape [${shape}] does not broadcast to [${full}]`);
    strides[d] = s[d] === 1 ? 0 : step;
    step *= s[d];
  }
  return strides;
}

/**
 * Lanes that share one output's reduction of n elements: the smallest power of two giving each lane about
 * `perLane` elements, capped at REDUCE_WG. Serial work per lane is cheap and barriers are not (a 129-long
 * row reduced 256-wide instead of 16-wide ran 20× slower on lavapipe); long rows still get a whole workgroup.
 */
export function lanesFor(n: number, perLane = 16): number {
  let t = 1;
  while (t * perLane < n && t < REDUCE_WG) t *= 2;
  return t;
}

/**
 * WGSL: a workgroup buffer and segmented tree reductions over groups of `lanes` consecutive invocations
 * (lanes a power of two dividing REDUCE_WG). Every invocation of the workgroup must call them (barriers);
 * each gets its segment's result.
 */
export function wgslSegmentReduce(lanes: number): string {
  const fn = (name: string, combine: string) => /* wgsl */ `
fn ${name}(v: f32, lid: u32) -> f32 {
  red_buf[lid] = v;
  workgroupBarrier();
  for (var s = ${lanes >> 1}u; s > 0u; s = s >> 1u) {
    if (lid % ${lanes}u < s) {
      let a = red_buf[lid];
      let b = red_buf[lid + s];
      red_buf[lid] = ${combine};
    }
    workgroupBarrier();
  }
  let r = red_buf[lid - lid % ${lanes}u];
  workgroupBarrier();
  return r;
}`;
  return `var<workgroup> red_buf: array<f32, ${REDUCE_WG}>;
${fn('segmentSum', 'a + b')}
${fn('segmentMax', 'max(a, b)')}`;
}

/** WGSL: the coordinates of flat index `i` in a row-major 4-D `shape`. */
const WGSL_COORDS = /* wgsl */ `
fn coords4(i: u32, shape: vec4<u32>) -> vec4<u32> {
  var c: vec4<u32>;
  var r = i;
  c.w = r % shape.w;
  r = r / shape.w;
  c.z = r % shape.z;
  r = r / shape.z;
  c.y = r % shape.y;
  c.x = r / shape.y;
  return c;
}`;

export interface BroadcastInput {
  /** WGSL name the map expression uses for this operand's element (e.g. `a`, `dy`). */
  name: string;
  buffer: GPUBuffer;
  /** Its shape; must broadcast to the iteration shape. */
  shape: readonly number[];
}

export interface MapReduceArgs {
  /** Names the op in labels. */
  op: string;
  inputs: BroadcastInput[];
  /** WGSL f32 expression of the input names (and `alpha`), summed over the reduced dims. */
  map: string;
  /** The iteration shape (rank ≤ 4): every input and the output broadcast to it. */
  shape: readonly number[];
  out: GPUBuffer;
  /** Output shape in keepdims form: each dim equals the iteration dim or 1 (summed over). */
  outShape: readonly number[];
  /** Multiplies the sum (1/count for a mean). */
  scale?: number;
  /** A constant the map may use as `alpha`. */
  alpha?: number;
  /** Add into `out` instead of overwriting it. */
  accumulate?: boolean;
}

/**
 * out[o] = (accumulate ? out[o] : 0) + scale · Σ_r map(inputs at (o, r)) over the dims where outShape is 1
 * and shape is not. A power-of-two group of lanes shares each output (1 when nothing is reduced, up to a
 * whole workgroup for long reductions), tree-reducing in workgroup memory.
 */
export async function mapReduce(ctx: KernelContext, args: MapReduceArgs): Promise<void> {
  const full = padShape(args.shape);
  const outFull = padShape(args.outShape);
  broadcastStrides(args.outShape, args.shape); // validates the keepdims form
  const reduceShape = full.map((d, i) => (outFull[i] === 1 ? d : 1));
  const m = numel(outFull);
  const r = numel(reduceShape);
  if (m === 0) return;
  const lanes = lanesFor(r);
  const strides = args.inputs.map((x) => broadcastStrides(x.shape, args.shape));
  const names = args.inputs.map((x) => x.name);
  const label = `${args.op}.mapReduce`;
  const pipeline = await getPipeline(ctx, label, mapReduceShader(names, args.map, lanes));
  const shapes = [...outFull, ...reduceShape, ...strides.flat()];
  const params = uniformBuffer(
    ctx,
    label,
    [...shapes, m, r, args.accumulate ? 1 : 0, args.scale ?? 1, args.alpha ?? 0],
    new Set([shapes.length + 3, shapes.length + 4]),
  );
  launch(
    ctx,
    {
      label,
      pipeline,
      buffers: [...args.inputs.map((x) => x.buffer), args.out, params],
      workgroups: dispatchFor(ctx, ceilDiv(m, REDUCE_WG / lanes)),
    },
    [params],
  );
}

function mapReduceShader(names: string[], map: string, lanes: number): string {
  const bindings = names
    .map((n, k) => `@group(0) @binding(${k}) var<storage, read> in_${n}: array<f32>;`)
    .join('\n');
  const loads = names.map((n, k) => `let ${n} = in_${n}[dot(cc, params.s${k})];`).join('\n      ');
  const reduce = lanes > 1 ? `acc = segmentSum(acc, lid);` : '';
  return /* wgsl */ `
struct Params {
  oshape: vec4<u32>,
  rshape: vec4<u32>,
  ${names.map((_, k) => `s${k}: vec4<u32>,`).join('\n  ')}
  m: u32,
  r: u32,
  accumulate: u32,
  scale: f32,
  alpha: f32,
}
${bindings}
@group(0) @binding(${names.length}) var<storage, read_write> out: array<f32>;
@group(0) @binding(${names.length + 1}) var<uniform> params: Params;
${WGSL_FLAT_WORKGROUP}
${WGSL_COORDS}
${lanes > 1 ? wgslSegmentReduce(lanes) : ''}

@compute @workgroup_size(${REDUCE_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let o = flatWorkgroupIndex(wid, nwg) * ${REDUCE_WG / lanes}u + lid / ${lanes}u;
  let alpha = params.alpha;
  var acc = 0.0;
  if (o < params.m) {
    let oc = coords4(o, params.oshape);
    for (var ri = lid % ${lanes}u; ri < params.r; ri += ${lanes}u) {
      let cc = oc + coords4(ri, params.rshape);
      ${loads}
      acc += ${map};
    }
  }
  ${reduce}
  if (o < params.m && lid % ${lanes}u == 0u) {
    var v = params.scale * acc;
    if (params.accumulate != 0u) {
      v += out[o];
    }
    out[o] = v;
  }
}`;
}

/** Partial sums the first pass of a full reduction writes: the `scratch` length sumAll/mapReduceAll need. */
export function reduceAllScratchLength(n: number): number {
  return Math.min(1024, Math.max(1, ceilDiv(n, 8 * REDUCE_WG)));
}

export interface MapReduceAllArgs {
  op: string;
  /** Flat inputs of n elements each, bound under `name` for the map expression. */
  inputs: { name: string; buffer: GPUBuffer }[];
  map: string;
  n: number;
  /** One f32: scale · Σ_i map(inputs[i]) (+ its old value when accumulating). */
  out: GPUBuffer;
  /** reduceAllScratchLength(n) f32 elements. */
  scratch: GPUBuffer;
  scale?: number;
  accumulate?: boolean;
}

/**
 * Sum of map(inputs) over all n elements in two passes: a grid-strided pass into at most 1024 partial
 * sums (any n, no dispatch folding needed), then one workgroup sums those.
 */
export async function mapReduceAll(ctx: KernelContext, args: MapReduceAllArgs): Promise<void> {
  const groups = reduceAllScratchLength(args.n);
  const names = args.inputs.map((x) => x.name);
  const label = `${args.op}.partialSums`;
  const pipeline = await getPipeline(ctx, label, partialSumsShader(names, args.map));
  const params = uniformBuffer(ctx, label, [args.n]);
  launch(
    ctx,
    {
      label,
      pipeline,
      buffers: [...args.inputs.map((x) => x.buffer), args.scratch, params],
      workgroups: [groups, 1, 1],
    },
    [params],
  );
  await mapReduce(ctx, {
    op: args.op,
    inputs: [{ name: 'x', buffer: args.scratch, shape: [groups] }],
    map: 'x',
    shape: [groups],
    out: args.out,
    outShape: [1],
    scale: args.scale,
    accumulate: args.accumulate,
  });
}

function partialSumsShader(names: string[], map: string): string {
  return /* wgsl */ `
${names.map((n, k) => `@group(0) @binding(${k}) var<storage, read> in_${n}: array<f32>;`).join('\n')}
@group(0) @binding(${names.length}) var<storage, read_write> partial: array<f32>;
@group(0) @binding(${names.length + 1}) var<uniform> n: u32;
${wgslSegmentReduce(REDUCE_WG)}

@compute @workgroup_size(${REDUCE_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let stride = nwg.x * ${REDUCE_WG}u;
  var acc = 0.0;
  for (var i = wid.x * ${REDUCE_WG}u + lid; i < n; i += stride) {
    ${names.map((nm) => `let ${nm} = in_${nm}[i];`).join('\n    ')}
    acc += ${map};
  }
  acc = segmentSum(acc, lid);
  if (lid == 0u) {
    partial[wid.x] = acc;
  }
}`;
}

/** out (keepdims `outShape`) = scale · sum of x over the dims where outShape is 1. */
export async function sumToShape(
  ctx: KernelContext,
  args: {
    x: GPUBuffer;
    out: GPUBuffer;
    shape: readonly number[];
    outShape: readonly number[];
    scale?: number;
    accumulate?: boolean;
  },
): Promise<void> {
  await mapReduce(ctx, {
    ...args,
    op: 'sum',
    inputs: [{ name: 'x', buffer: args.x, shape: args.shape }],
    map: 'x',
  });
}

/** dx = scale · dOut broadcast back to `shape`: the backward of sumToShape with the same scale. */
export async function sumToShapeBackward(
  ctx: KernelContext,
  args: {
    dOut: GPUBuffer;
    dx: GPUBuffer;
    shape: readonly number[];
    outShape: readonly number[];
    scale?: number;
    accumulate?: boolean;
  },
): Promise<void> {
  await mapReduce(ctx, {
    ...args,
    op: 'sum.backward',
    inputs: [{ name: 'dy', buffer: args.dOut, shape: args.outShape }],
    map: 'dy',
    out: args.dx,
    outShape: args.shape,
  });
}

interface Matrix {
  rows: number;
  cols: number;
  accumulate?: boolean;
}

/** The keepdims view of a last-axis reduction of a [rows, cols] matrix. */
function lastAxis(a: Matrix & { mean?: boolean }) {
  return { shape: [a.rows, a.cols], outShape: [a.rows, 1], scale: a.mean ? 1 / a.cols : 1 };
}

/** The keepdims view of a column sum of a [rows, cols] matrix. */
function leadingAxes(a: Matrix) {
  return { shape: [a.rows, a.cols], outShape: [1, a.cols] };
}

/** out[r] = sum (or mean) of x[r, :] for x of shape [rows, cols]. */
export async function sumLastAxis(
  ctx: KernelContext,
  args: Matrix & { x: GPUBuffer; out: GPUBuffer; mean?: boolean },
): Promise<void> {
  await sumToShape(ctx, { ...args, ...lastAxis(args) });
}

/** dx[r, c] = dOut[r] (· 1/cols for a mean). */
export async function sumLastAxisBackward(
  ctx: KernelContext,
  args: Matrix & { dOut: GPUBuffer; dx: GPUBuffer; mean?: boolean },
): Promise<void> {
  await sumToShapeBackward(ctx, { ...args, ...lastAxis(args) });
}

/** Column sums: out[c] = Σ_r x[r, c] for x of shape [rows, cols] (rows = product of the leading axes). */
export async function sumLeadingAxes(
  ctx: KernelContext,
  args: Matrix & { x: GPUBuffer; out: GPUBuffer },
): Promise<void> {
  await sumToShape(ctx, { ...args, ...leadingAxes(args) });
}

/** dx[r, c] = dOut[c]. */
export async function sumLeadingAxesBackward(
  ctx: KernelContext,
  args: Matrix & { dOut: GPUBuffer; dx: GPUBuffer },
): Promise<void> {
  await sumToShapeBackward(ctx, { ...args, ...leadingAxes(args) });
}

/** out[0] = sum (or mean) of all n elements of x; scratch holds reduceAllScratchLength(n) floats. */
export async function sumAll(
  ctx: KernelContext,
  args: { x: GPUBuffer; out: GPUBuffer; n: number; scratch: GPUBuffer; mean?: boolean; accumulate?: boolean },
): Promise<void> {
  const scale = args.mean ? 1 / args.n : 1;
  await mapReduceAll(ctx, {
    ...args,
    op: 'sumAll',
    inputs: [{ name: 'x', buffer: args.x }],
    map: 'x',
    scale,
  });
}

/** dx[i] = dOut[0] (· 1/n for a mean). */
export async function sumAllBackward(
  ctx: KernelContext,
  args: { dOut: GPUBuffer; dx: GPUBuffer; n: number; mean?: boolean; accumulate?: boolean },
): Promise<void> {
  await sumToShapeBackward(ctx, {
    ...args,
    shape: [args.n],
    outShape: [1],
    scale: args.mean ? 1 / args.n : 1,
  });
}
