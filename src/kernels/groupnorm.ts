// GroupNorm (NCHW, per-channel affine) forward and backward. In NCHW each (sample, group) is one contiguous
// segment, so the kernels normalise segments; layernorm.ts runs the same kernels with one group per row.
import {
  dispatchFor,
  getPipeline,
  launch,
  uniformBuffer,
  WGSL_FLAT_WORKGROUP,
  type KernelContext,
} from './common';

export interface GroupNormShape {
  batch: number;
  channels: number;
  h: number;
  w: number;
  groups: number;
  eps: number;
}

/** Buffers of the forward: `stats` receives (mean, rstd) per (n, g), i.e. batch·groups·2 floats. */
export interface NormForwardBuffers {
  x: GPUBuffer;
  gamma: GPUBuffer;
  beta: GPUBuffer;
  out: GPUBuffer;
  stats: GPUBuffer;
}
export interface NormBackwardInputBuffers {
  dy: GPUBuffer;
  x: GPUBuffer;
  gamma: GPUBuffer;
  stats: GPUBuffer;
  dx: GPUBuffer;
  accumulate?: boolean;
}
export interface NormBackwardAffineBuffers {
  dy: GPUBuffer;
  x: GPUBuffer;
  stats: GPUBuffer;
  dgamma: GPUBuffer;
  dbeta: GPUBuffer;
  accumulate?: boolean;
}

const WG = 256;

const PRELUDE = /* wgsl */ `
${WGSL_FLAT_WORKGROUP}
struct Params {
  batch: u32, channels: u32, hw: u32, groups: u32,
  cpg: u32, segLen: u32, accumulate: u32, eps: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
var<workgroup> partial: array<vec2<f32>, ${WG}>;

/** Sum of v over the workgroup's ${WG} threads; call from uniform control flow. */
fn workgroupSum(t: u32, v: vec2<f32>) -> vec2<f32> {
  partial[t] = v;
  workgroupBarrier();
  for (var span = ${WG / 2}u; span > 0u; span >>= 1u) {
    if (t < span) { partial[t] += partial[t + span]; }
    workgroupBarrier();
  }
  let r = partial[0];
  workgroupBarrier();
  return r;
}
`;

/** One workgroup per segment: two passes for a stable variance, then the normalised, affine output. */
const forwardShader = /* wgsl */ `
${PRELUDE}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let seg = flatWorkgroupIndex(wid, nwg);
  if (seg >= p.batch * p.groups) { return; }
  let base = seg * p.segLen;
  let n = f32(p.segLen);
  var s = 0.0;
  for (var i = t; i < p.segLen; i += ${WG}u) { s += x[base + i]; }
  let mean = workgroupSum(t, vec2(s, 0.0)).x / n;
  var q = 0.0;
  for (var i = t; i < p.segLen; i += ${WG}u) {
    let d = x[base + i] - mean;
    q += d * d;
  }
  let rstd = inverseSqrt(workgroupSum(t, vec2(q, 0.0)).x / n + p.eps);
  if (t == 0u) {
    stats[2u * seg] = mean;
    stats[2u * seg + 1u] = rstd;
  }
  let c0 = (seg % p.groups) * p.cpg;
  for (var i = t; i < p.segLen; i += ${WG}u) {
    let c = c0 + i / p.hw;
    y[base + i] = (x[base + i] - mean) * rstd * gamma[c] + beta[c];
  }
}
`;

/** dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·gamma, means over the segment. */
const backwardInputShader = /* wgsl */ `
${PRELUDE}
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let seg = flatWorkgroupIndex(wid, nwg);
  if (seg >= p.batch * p.groups) { return; }
  let base = seg * p.segLen;
  let mean = stats[2u * seg];
  let rstd = stats[2u * seg + 1u];
  let c0 = (seg % p.groups) * p.cpg;
  var s = vec2(0.0, 0.0);
  for (var i = t; i < p.segLen; i += ${WG}u) {
    let g = dy[base + i] * gamma[c0 + i / p.hw];
    s += vec2(g, g * (x[base + i] - mean) * rstd);
  }
  let m = workgroupSum(t, s) / f32(p.segLen);
  for (var i = t; i < p.segLen; i += ${WG}u) {
    let g = dy[base + i] * gamma[c0 + i / p.hw];
    let v = rstd * (g - m.x - (x[base + i] - mean) * rstd * m.y);
    if (p.accumulate != 0u) { dx[base + i] += v; } else { dx[base + i] = v; }
  }
}
`;

/**
 * dgamma[c] = Σ dy·x̂, dbeta[c] = Σ dy over samples and pixels. A workgroup takes CT adjacent channels and
 * WG/CT lanes per channel: CT = 1 for large images (lanes walk a channel's contiguous pixels), CT = 32 for
 * 1×1 "images" such as LayerNorm rows (32 threads read 32 adjacent channels of a row).
 */
function backwardAffineShader(ct: number): string {
  const lanes = WG / ct;
  return /* wgsl */ `
${PRELUDE}
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(5) var<storage, read_write> dbeta: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let c0 = flatWorkgroupIndex(wid, nwg) * ${ct}u;
  if (c0 >= p.channels) { return; }
  let c = c0 + t % ${ct}u;
  let lane = t / ${ct}u;
  var s = vec2(0.0, 0.0);
  if (c < p.channels) {
    let g = c / p.cpg;
    for (var j = lane; j < p.batch * p.hw; j += ${lanes}u) {
      let n = j / p.hw;
      let i = (n * p.channels + c) * p.hw + j - n * p.hw;
      let seg = n * p.groups + g;
      let d = dy[i];
      s += vec2(d * (x[i] - stats[2u * seg]) * stats[2u * seg + 1u], d);
    }
  }
  // Reduce over lanes only: threads t and t + k·${ct} hold the same channel.
  partial[t] = s;
  workgroupBarrier();
  for (var span = ${lanes / 2}u; span > 0u; span >>= 1u) {
    if (lane < span) { partial[t] += partial[t + span * ${ct}u]; }
    workgroupBarrier();
  }
  if (lane == 0u && c < p.channels) {
    let r = partial[t];
    if (p.accumulate != 0u) {
      dgamma[c] += r.x;
      dbeta[c] += r.y;
    } else {
      dgamma[c] = r.x;
      dbeta[c] = r.y;
    }
  }
}
`;
}

function params(ctx: KernelContext, label: string, s: GroupNormShape, accumulate: boolean): GPUBuffer {
  const ok = [s.batch, s.channels, s.h, s.w, s.groups].every((d) => Number.isInteger(d) && d >= 1);
  if (!ok || s.channels % s.groups !== 0 || !(s.eps >= 0)) {
    throw new Error(`${label}: invalid shape ${JSON.stringify(s)} (channels must divide into groups)`);
  }
  const hw = s.h * s.w;
  const cpg = s.channels / s.groups;
  return uniformBuffer(
    ctx,
    label,
    [s.batch, s.channels, hw, s.groups, cpg, cpg * hw, accumulate ? 1 : 0, s.eps],
    new Set([7]),
  );
}

/** Forward over contiguous segments; `op` names the pipeline (groupnorm or layernorm). */
export async function segmentNormForward(
  ctx: KernelContext,
  op: string,
  s: GroupNormShape,
  b: NormForwardBuffers,
): Promise<void> {
  const label = `${op}.forward`;
  const pipeline = await getPipeline(ctx, label, forwardShader);
  const u = params(ctx, label, s, false);
  const buffers = [u, b.x, b.gamma, b.beta, b.out, b.stats];
  launch(ctx, { label, pipeline, buffers, workgroups: dispatchFor(ctx, s.batch * s.groups) }, [u]);
}

export async function segmentNormBackwardInput(
  ctx: KernelContext,
  op: string,
  s: GroupNormShape,
  b: NormBackwardInputBuffers,
): Promise<void> {
  const label = `${op}.backwardInput`;
  const pipeline = await getPipeline(ctx, label, backwardInputShader);
  const u = params(ctx, label, s, b.accumulate ?? false);
  const buffers = [u, b.dy, b.x, b.gamma, b.stats, b.dx];
  launch(ctx, { label, pipeline, buffers, workgroups: dispatchFor(ctx, s.batch * s.groups) }, [u]);
}

export async function segmentNormBackwardAffine(
  ctx: KernelContext,
  op: string,
  s: GroupNormShape,
  b: NormBackwardAffineBuffers,
): Promise<void> {
  const ct = s.h * s.w >= 32 ? 1 : 32;
  const label = `${op}.backwardAffine[c${ct}]`;
  const pipeline = await getPipeline(ctx, label, backwardAffineShader(ct));
  const u = params(ctx, label, s, b.accumulate ?? false);
  const buffers = [u, b.dy, b.x, b.stats, b.dgamma, b.dbeta];
  launch(ctx, { label, pipeline, buffers, workgroups: dispatchFor(ctx, Math.ceil(s.channels / ct)) }, [u]);
}

/** out = GroupNorm(x)·gamma + beta; stats receives (mean, rstd) for each (n, g), batch·groups·2 floats. */
export function groupNorm(ctx: KernelContext, args: GroupNormShape & NormForwardBuffers): Promise<void> {
  return segmentNormForward(ctx, 'groupnorm', args, args);
}

/** dx (+)= ∂(Σ dy·out)/∂x from the forward's stats. */
export function groupNormBackwardInput(
  ctx: KernelContext,
  args: GroupNormShape & NormBackwardInputBuffers,
): Promise<void> {
  return segmentNormBackwardInput(ctx, 'groupnorm', args, args);
}

/** dgamma[c] (+)= Σ dy·x̂ and dbeta[c] (+)= Σ dy; skip it when gamma and beta are frozen. */
export function groupNormBackwardAffine(
  ctx: KernelContext,
  args: GroupNormShape & NormBackwardAffineBuffers,
): Promise<void> {
  return segmentNormBackwardAffine(ctx, 'groupnorm', args, args);
}
