// A compute self-test: a small matmul on the GPU checked element by element against JavaScript.
import type { Gpu } from '../src/gpu/device';
import {
  getPipeline,
  kernelContext,
  launch,
  readF32,
  storageBuffer,
  upload,
  uniformBuffer,
} from '../src/kernels/common';

const MATMUL_WGSL = /* wgsl */ `
struct Params { m: u32, n: u32, k: u32, _pad: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x >= p.n || gid.y >= p.m) { return; }
  var acc = 0.0;
  for (var i = 0u; i < p.k; i++) { acc += a[gid.y * p.k + i] * b[i * p.n + gid.x]; }
  c[gid.y * p.n + gid.x] = acc;
}`;

export interface MatmulCheck {
  m: number;
  n: number;
  k: number;
  maxAbsError: number;
  elapsedMs: number;
}

/** Runs C = A·B for odd sizes (not multiples of the workgroup) and returns the max error vs JavaScript. */
export async function matmulSelfTest(gpu: Gpu, m = 37, k = 29, n = 41): Promise<MatmulCheck> {
  const t0 = performance.now();
  const ctx = kernelContext(gpu);
  const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i * 0.37));
  const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i * 0.11));
  const pipeline = await getPipeline(ctx, 'selftest.matmul', MATMUL_WGSL);
  const bufA = upload(ctx, 'selftest.a', a);
  const bufB = upload(ctx, 'selftest.b', b);
  const bufC = storageBuffer(ctx, 'selftest.c', m * n * 4);
  const params = uniformBuffer(ctx, 'selftest.matmul', [m, n, k]);
  launch(
    ctx,
    {
      label: 'selftest.matmul',
      pipeline,
      buffers: [bufA, bufB, bufC, params],
      workgroups: [Math.ceil(n / 8), Math.ceil(m / 8), 1],
    },
    [params],
  );
  const c = await readF32(ctx, bufC, m * n);
  let maxAbsError = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i * k + t] * b[t * n + j];
      maxAbsError = Math.max(maxAbsError, Math.abs(s - c[i * n + j]));
    }
  }
  for (const buf of [bufA, bufB, bufC]) buf.destroy();
  return { m, n, k, maxAbsError, elapsedMs: performance.now() - t0 };
}
