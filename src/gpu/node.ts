// GPU entry point for Node: Dawn through the npm `webgpu` package. Backend choice and driver notes in README.
import { create, globals } from 'webgpu';
import { acquireGpu, type AcquireOptions, type Gpu } from './device';

let entry: GPU | undefined;

/**
 * Dawn's GPU object. LORA2_DAWN_BACKEND=vulkan|opengles picks the backend (default: Dawn's choice,
 * which is Vulkan over Mesa lavapipe on our CI machines).
 */
export function nodeGpuEntry(): GPU {
  if (!entry) {
    // WebGPU constants (GPUBufferUsage, GPUShaderStage, ...) are globals in browsers; Dawn ships them here.
    Object.assign(globalThis, globals);
    const flags: string[] = [];
    const backend = process.env.LORA2_DAWN_BACKEND;
    if (backend) flags.push(`backend=${backend}`);
    if (backend === 'opengles') flags.push('adapter=compat');
    entry = create(flags);
  }
  return entry;
}

export function acquireNodeGpu(opts: AcquireOptions = {}): Promise<Gpu> {
  return acquireGpu(nodeGpuEntry(), opts);
}
