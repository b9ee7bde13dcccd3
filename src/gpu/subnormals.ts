// Does an adapter keep subnormal floats (IEEE 754) or flush them to zero? GPUs usually flush; CPU adapters differ
// (lavapipe keeps them and computes with them slowly, SwiftShader flushes). The kernels avoid making them where a
// trained model would (src/kernels/common.ts, expFtz); this probe is for reports (`npm run gpu:info`, the benches).

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
export async function probeSubnormals(device: GPUDevice): Promise<SubnormalBehaviour> {
  const pipeline = await device.createComputePipelineAsync({
    label: 'subnormal probe',
    layout: 'auto',
    compute: {
      module: device.createShaderModule({ label: 'subnormal probe', code: PROBE }),
      entryPoint: 'main',
    },
  });
  const values = new Float32Array([1e-20, 1e-20, 0, 1e-40, 2, 0]);
  const buf = device.createBuffer({
    label: 'subnormal probe',
    size: values.byteLength,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  const read = device.createBuffer({
    label: 'subnormal probe readback',
    size: values.byteLength,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  try {
    device.queue.writeBuffer(buf, 0, values);
    const enc = device.createCommandEncoder({ label: 'subnormal probe' });
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(
      0,
      device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [{ binding: 0, resource: { buffer: buf } }],
      }),
    );
    pass.dispatchWorkgroups(1);
    pass.end();
    enc.copyBufferToBuffer(buf, 0, read, 0, values.byteLength);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const got = new Float32Array(read.getMappedRange().slice(0));
    read.unmap();
    return { results: got[2] === 0 ? 'flushed' : 'kept', inputs: got[5] === 0 ? 'flushed' : 'kept' };
  } finally {
    buf.destroy();
    read.destroy();
  }
}

/** One line for a report. */
export function describeSubnormals(s: SubnormalBehaviour): string {
  if (s.results === 'kept' && s.inputs === 'kept') return 'kept (IEEE; slow on a CPU adapter)';
  if (s.results === 'flushed' && s.inputs === 'flushed') return 'flushed to zero';
  return `results ${s.results}, subnormal inputs ${s.inputs}`;
}
