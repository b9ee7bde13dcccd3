// Batched 2-D transpose [batch, rows, cols] → [batch, cols, rows] through a 16×16 workgroup tile (so both
// the reads and the writes are coalesced). Moves NCHW feature maps to [B, HW, C] tokens and back; its
// backward is the transpose with rows and cols swapped.
import { getPipeline, launch, uniformBuffer, type KernelContext } from './common';

const TILE = 16;

const WGSL = /* wgsl */ `
struct Params { batch: u32, rows: u32, cols: u32, accumulate: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
var<workgroup> tile: array<array<f32, ${TILE + 1}>, ${TILE}>;

@compute @workgroup_size(${TILE}, ${TILE})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.z;
  let base = b * p.rows * p.cols;
  // Read a tile of x: row r = wid.y*T + lid.y, column c = wid.x*T + lid.x.
  let r = wid.y * ${TILE}u + lid.y;
  let c = wid.x * ${TILE}u + lid.x;
  if (r < p.rows && c < p.cols) { tile[lid.y][lid.x] = x[base + r * p.cols + c]; }
  workgroupBarrier();
  // Write it transposed: y[c', r'] with c' = wid.x*T + lid.y, r' = wid.y*T + lid.x.
  let oc = wid.x * ${TILE}u + lid.y;
  let orow = wid.y * ${TILE}u + lid.x;
  if (oc < p.cols && orow < p.rows) {
    let o = base + oc * p.rows + orow;
    let v = tile[lid.x][lid.y];
    if (p.accumulate != 0u) { y[o] = y[o] + v; } else { y[o] = v; }
  }
}`;

export interface TransposeArgs {
  x: GPUBuffer;
  y: GPUBuffer;
  batch: number;
  rows: number;
  cols: number;
  /** Add into y instead of overwriting it. */
  accumulate?: boolean;
}

export async function transpose(ctx: KernelContext, a: TransposeArgs): Promise<void> {
  const maxZ = ctx.gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535;
  if (a.batch > maxZ) throw new Error(`transpose: batch ${a.batch} exceeds the dispatch limit ${maxZ}`);
  const pipeline = await getPipeline(ctx, 'transpose', WGSL);
  const params = uniformBuffer(ctx, 'transpose', [a.batch, a.rows, a.cols, a.accumulate ? 1 : 0]);
  launch(
    ctx,
    {
      label: 'transpose',
      pipeline,
      buffers: [a.x, a.y, params],
      workgroups: [Math.ceil(a.cols / TILE), Math.ceil(a.rows / TILE), a.batch],
    },
    [params],
  );
}
