// Does an adapter keep subnormal floats (IEEE 754) or flush them to zero? GPUs usually flush; CPU adapters differ
// (lavapipe keeps them and computes with them slowly, SwiftShader flushes). The kernels avoid making them where a
// trained model would (src/kernels/common.ts, expFtz); this probe is for reports (`npm run gpu:info`, the benches).
import { getPipeline, kernelContext, launch, readF32, upload } from '../kernels/common';
import type { Gpu } from './device';

/** `results`: a product below the normal range (1e-20 · 1e-20); `inputs`: a subnormal operand (1e-40 · 2). */
export interface SubnormalBehaviour {
  results: 'kept' | 'flushed';
  inputs: 'kept' | 'flushed';
}

const PROBE = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> a: array<f32, 6>;
@compute @workgroup_size(1)
fn main() {
  a[2] = a[0] * a[1];
  a[5] = a[3] * a[4];
}`;

/** Runs two multiplications on the device (operands from a buffer, so no compiler folds them) and reads them back. */
export async function probeSubnormals(gpu: Gpu): Promise<SubnormalBehaviour> {
  const ctx = kernelContext(gpu);
  const buf = upload(ctx, 'subnormal probe', new Float32Array([1e-20, 1e-20, 0, 1e-40, 2, 0]));
  try {
    const pipeline = await getPipeline(ctx, 'subnormal probe', PROBE);
    launch(ctx, { label: 'subnormal probe', pipeline, buffers: [buf], workgroups: [1, 1, 1] });
    const got = await readF32(ctx, buf, 6);
    return { results: got[2] === 0 ? 'flushed' : 'kept', inputs: got[5] === 0 ? 'flushed' : 'kept' };
  } finally {
    buf.destroy();
  }
}

/** One line for a report. */
export function describeSubnormals(s: SubnormalBehaviour): string {
  if (s.results === 'kept' && s.inputs === 'kept') return 'kept (IEEE; slow on a CPU adapter)';
  if (s.results === 'flushed' && s.inputs === 'flushed') return 'flushed to zero';
  return `results ${s.results}, subnormal inputs ${s.inputs}`;
}
