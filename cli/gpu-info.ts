// Prints the Node WebGPU adapter (Dawn) with its features, key limits and what it does with subnormal floats;
// exits 1 with the typed error if none.
import { adapterName } from '../src/gpu/device';
import { GpuError } from '../src/gpu/errors';
import { acquireNodeGpu } from '../src/gpu/node';
import { describeSubnormals, probeSubnormals } from '../src/gpu/subnormals';

try {
  const gpu = await acquireNodeGpu();
  console.log(`adapter: ${adapterName(gpu.adapter)}${gpu.adapter.isFallback ? ' (software)' : ''}`);
  console.log(`features: ${JSON.stringify(gpu.features)}`);
  console.log(`limits: ${JSON.stringify(gpu.limits)}`);
  console.log(`subnormal floats: ${describeSubnormals(await probeSubnormals(gpu))}`);
  gpu.destroy();
  process.exit(0);
} catch (e) {
  console.error(e instanceof GpuError ? `${e.message}\n${e.advice}` : e);
  process.exit(1);
}
