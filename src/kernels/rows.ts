// Row gather/scatter by a u32 index buffer, and strided 2-D block copies between matrices of different
// shapes (LoRA² capacity growth: A gains rows, B gains columns; NCHW channel concat/split use them too).
import { getPipeline, launch, uniformBuffer, type KernelContext } from './common';
import { fill, flatDispatch, wgslFlatMain } from './elementwise';

const GATHER = /* wgsl */ `
struct Params { rows: u32, cols: u32, srcRows: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> index: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
${wgslFlatMain(
  `let row = index[i / params.cols];
  // An index past the source reads as a zero row rather than someone else's memory.
  dst[i] = select(0.0, src[row * params.cols + i % params.cols], row < params.srcRows);`,
  'params.rows * params.cols',
)}`;

/** dst[i, :] = src[index[i], :] for i < rows; src is [srcRows, cols], an index ≥ srcRows gives zeros. */
export async function gatherRows(
  ctx: KernelContext,
  args: { src: GPUBuffer; index: GPUBuffer; dst: GPUBuffer; rows: number; cols: number; srcRows: number },
): Promise<void> {
  const n = args.rows * args.cols;
  if (n === 0) return;
  const pipeline = await getPipeline(ctx, 'gatherRows', GATHER);
  const params = uniformBuffer(ctx, 'gatherRows', [args.rows, args.cols, args.srcRows]);
  const buffers = [args.src, args.index, args.dst, params];
  launch(ctx, { label: 'gatherRows', pipeline, buffers, workgroups: flatDispatch(ctx, n) }, [params]);
}

function scatterShader(add: boolean): string {
  // Float add on a u32 word by compare-and-swap: WGSL has no float atomics, and repeated indices must sum.
  const write = add
    ? `var old = atomicLoad(&dst[at]);
  loop {
    let r = atomicCompareExchangeWeak(&dst[at], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) {
      break;
    }
    old = r.old_value;
  }`
    : `atomicStore(&dst[at], bitcast<u32>(v));`;
  return /* wgsl */ `
struct Params { rows: u32, cols: u32, dstRows: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> index: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> params: Params;
${wgslFlatMain(
  `let row = index[i / params.cols];
  if (row >= params.dstRows) {
    return;
  }
  let at = row * params.cols + i % params.cols;
  let v = src[i];
  ${write}`,
  'params.rows * params.cols',
)}`;
}

/**
 * dst[index[i], :] = src[i, :] (or += with `add`, summing repeated indices) for i < rows; dst is
 * [dstRows, cols] and indices ≥ dstRows are skipped. Without `add`, a repeated index keeps one of its rows.
 * The backward of an add-scatter is gatherRows of the output gradient.
 */
export async function scatterRows(
  ctx: KernelContext,
  args: {
    src: GPUBuffer;
    index: GPUBuffer;
    dst: GPUBuffer;
    rows: number;
    cols: number;
    dstRows: number;
    add?: boolean;
  },
): Promise<void> {
  const n = args.rows * args.cols;
  if (n === 0) return;
  const label = args.add ? 'scatterAddRows' : 'scatterRows';
  const pipeline = await getPipeline(ctx, label, scatterShader(Boolean(args.add)));
  const params = uniformBuffer(ctx, label, [args.rows, args.cols, args.dstRows]);
  const buffers = [args.src, args.index, args.dst, params];
  launch(ctx, { label, pipeline, buffers, workgroups: flatDispatch(ctx, n) }, [params]);
}

/** dSrc [srcRows, cols] from dDst [rows, cols]: the rows' gradients summed at their indices. */
export async function gatherRowsBackward(
  ctx: KernelContext,
  args: {
    dDst: GPUBuffer;
    index: GPUBuffer;
    dSrc: GPUBuffer;
    rows: number;
    cols: number;
    srcRows: number;
    accumulate?: boolean;
  },
): Promise<void> {
  if (!args.accumulate) await fill(ctx, { dst: args.dSrc, n: args.srcRows * args.cols, value: 0 });
  await scatterRows(ctx, { ...args, src: args.dDst, dst: args.dSrc, dstRows: args.srcRows, add: true });
}

const COPY_BLOCK = /* wgsl */ `
struct Params { rows: u32, cols: u32, srcCols: u32, dstCols: u32, srcBase: u32, dstBase: u32, accumulate: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
${wgslFlatMain(
  `let r = i / params.cols;
  let c = i % params.cols;
  let at = params.dstBase + r * params.dstCols + c;
  var v = src[params.srcBase + r * params.srcCols + c];
  if (params.accumulate != 0u) {
    v += dst[at];
  }
  dst[at] = v;`,
  'params.rows * params.cols',
)}`;

export type RowCol = readonly [row: number, col: number];

/**
 * dst[dstAt + (r, c)] = src[srcAt + (r, c)] (or +=) for the block (r, c) < `block`, between row-major
 * matrices of shapes srcShape and dstShape. Growing LoRA capacity: A [C, in] → A' [C', in] copies block
 * [C, in]; B [out, C] → B' [out, C'] copies block [out, C]. src and dst must be different buffers.
 */
export async function copyBlock(
  ctx: KernelContext,
  args: {
    src: GPUBuffer;
    srcShape: RowCol;
    srcAt?: RowCol;
    dst: GPUBuffer;
    dstShape: RowCol;
    dstAt?: RowCol;
    block: RowCol;
    accumulate?: boolean;
  },
): Promise<void> {
  const [rows, cols] = args.block;
  const srcAt = args.srcAt ?? [0, 0];
  const dstAt = args.dstAt ?? [0, 0];
  for (const [what, at, shape] of [
    ['source', srcAt, args.srcShape],
    ['destination', dstAt, args.dstShape],
  ] as const) {
    if (at[0] < 0 || at[1] < 0 || at[0] + rows > shape[0] || at[1] + cols > shape[1]) {
      throw new Error(`copyBlock: block [${args.block}] at [${at}] leaves the ${what} [${shape}]`);
    }
  }
  if (rows * cols === 0) return;
  const pipeline = await getPipeline(ctx, 'copyBlock', COPY_BLOCK);
  const params = uniformBuffer(ctx, 'copyBlock', [
    rows,
    cols,
    args.srcShape[1],
    args.dstShape[1],
    srcAt[0] * args.srcShape[1] + srcAt[1],
    dstAt[0] * args.dstShape[1] + dstAt[1],
    args.accumulate ? 1 : 0,
  ]);
  launch(
    ctx,
    {
      label: 'copyBlock',
      pipeline,
      buffers: [args.src, args.dst, params],
      workgroups: flatDispatch(ctx, rows * cols),
    },
    [params],
  );
}
