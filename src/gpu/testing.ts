// The Node GPU used by the gpu test tier: one Dawn device per test process, its adapter printed once.
import { adapterName, type Gpu } from './device';
import { acquireNodeGpu } from './node';

let shared: Promise<Gpu> | undefined;

export function testGpu(): Promise<Gpu> {
  if (!shared) {
    shared = acquireNodeGpu({ label: 'test-device' }).then((gpu) => {
      if (!process.env.LORA2_QUIET_ADAPTER) {
        console.log(`[gpu tier] adapter: ${adapterName(gpu.adapter)} f16=${gpu.features.shaderF16}`);
        process.env.LORA2_QUIET_ADAPTER = '1';
      }
      return gpu;
    });
  }
  return shared;
}
