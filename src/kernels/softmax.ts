// Softmax over the last axis of a [rows, cols] tensor (max-subtracted, so any finite input is safe) and its
// backward dx = y ⊙ (dy − Σ dy ⊙ y). A power-of-two group of lanes shares each row, reducing in workgroup memory.
import {
  ceilDiv,
  dispatchFor,
  getPipeline,
  launch,
  uniformBuffer,
  WGSL_FLAT_WORKGROUP,
  type KernelContext,
} from './common';
import { lanesFor, REDUCE_WG, wgslSegmentReduce } from './reduce';

/**
 * A kernel with `lanes` invocations per row: `body` sees `row`, `base` (its first element), `valid`, and
 * `eachCol(stmt)` expands to a strided loop over the row's columns `c` (only for valid rows).
 */
function rowShader(
  bindings: string,
  lanes: number,
  body: (eachCol: (stmt: string) => string) => string,
): string {
  const eachCol = (stmt: string) =>
    `if (valid) { for (var c = lid % ${lanes}u; c < params.cols; c += ${lanes}u) { ${stmt} } }`;
  return /* wgsl */ `
struct Params { rows: u32, cols: u32, accumulate: u32 }
${bindings}
${WGSL_FLAT_WORKGROUP}
${wgslSegmentReduce(lanes)}

@compute @workgroup_size(${REDUCE_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = flatWorkgroupIndex(wid, nwg) * ${REDUCE_WG / lanes}u + lid / ${lanes}u;
  let valid = row < params.rows;
  let base = row * params.cols;
  ${body(eachCol)}
}`;
}

async function launchRows(
  ctx: KernelContext,
  label: string,
  buffers: GPUBuffer[],
  args: { rows: number; cols: number; accumulate?: boolean },
  code: (lanes: number) => string,
): Promise<void> {
  if (args.rows * args.cols === 0) return;
  const lanes = lanesFor(args.cols);
  const pipeline = await getPipeline(ctx, label, code(lanes));
  const params = uniformBuffer(ctx, label, [args.rows, args.cols, args.accumulate ? 1 : 0]);
  const workgroups = dispatchFor(ctx, ceilDiv(args.rows, REDUCE_WG / lanes));
  launch(ctx, { label, pipeline, buffers: [...buffers, params], workgroups }, [params]);
}

/** y[r, :] = softmax(x[r, :]) for x, y of shape [rows, cols]. */
export async function softmax(
  ctx: KernelContext,
  args: { x: GPUBuffer; y: GPUBuffer; rows: number; cols: number },
): Promise<void> {
  const bindings = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;`;
  await launchRows(ctx, 'softmax', [args.x, args.y], args, (lanes) =>
    rowShader(
      bindings,
      lanes,
      (eachCol) => /* wgsl */ `
  var m = -3.402823e38;
  ${eachCol('m = max(m, x[base + c]);')}
  m = segmentMax(m, lid);
  var s = 0.0;
  ${eachCol('s += exp(x[base + c] - m);')}
  let inv = 1.0 / segmentSum(s, lid);
  ${eachCol('y[base + c] = exp(x[base + c] - m) * inv;')}`,
    ),
  );
}

/** dx = y ⊙ (dy − Σ_c dy ⊙ y) per row, from the forward output y. */
export async function softmaxBackward(
  ctx: KernelContext,
  args: { y: GPUBuffer; dy: GPUBuffer; dx: GPUBuffer; rows: number; cols: number; accumulate?: boolean },
): Promise<void> {
  const bindings = /* wgsl */ `
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;`;
  await launchRows(ctx, 'softmax.backward', [args.y, args.dy, args.dx], args, (lanes) =>
    rowShader(
      bindings,
      lanes,
      (eachCol) => /* wgsl */ `
  var d = 0.0;
  ${eachCol('d += dy[base + c] * y[base + c];')}
  d = segmentSum(d, lid);
  ${eachCol(`var v = y[base + c] * (dy[base + c] - d);
    if (params.accumulate != 0u) { v += dx[base + c]; }
    dx[base + c] = v;`)}`,
    ),
  );
}
