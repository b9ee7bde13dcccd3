// onnxruntime-web for the kernel benchmark, in Node or a browser page: its WebGPU execution provider on the
// adapter our kernels use, with GPU-resident inputs and outputs, or its WASM EP when WebGPU cannot be set up.
import { onnxModel, type OnnxGraph } from './onnx';

export type Ort = typeof import('onnxruntime-web/webgpu');

export interface OrtRunner {
  /** 'webgpu', or 'wasm' when the WebGPU EP failed (then `fallbackReason` says why). */
  ep: 'webgpu' | 'wasm';
  fallbackReason?: string;
  /** Builds a session for the graph with random inputs; `run` executes it once and waits for the GPU. */
  prepare(graph: OnnxGraph): Promise<{ run: () => Promise<void>; release: () => Promise<void> }>;
}

function randomData(n: number): Float32Array<ArrayBuffer> {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Sets up an already imported onnxruntime-web (`navigator.gpu` must be the adapter's GPU object) with its
 * wasm files at `wasmPaths`, and probes its WebGPU EP; WASM is the fallback.
 */
export async function createOrtRunnerWith(ort: Ort, wasmPaths: string): Promise<OrtRunner> {
  ort.env.wasm.wasmPaths = wasmPaths;
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';

  const webgpu = async (graph: OnnxGraph) => {
    const session = await ort.InferenceSession.create(onnxModel(graph), {
      executionProviders: ['webgpu'],
      preferredOutputLocation: 'gpu-buffer',
    });
    // The EP makes its own device on the adapter; inputs must live on it.
    const device = (await ort.env.webgpu.device) as unknown as GPUDevice;
    const feeds: Record<string, import('onnxruntime-web').Tensor> = {};
    const buffers: GPUBuffer[] = [];
    for (const v of graph.inputs) {
      const data = randomData(numel(v.shape));
      const buf = device.createBuffer({
        label: `bench.ort.${v.name}`,
        // ORT's kernels bind at least 16 bytes, even for a 1-element tensor.
        size: Math.max(16, Math.ceil(data.byteLength / 16) * 16),
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      device.queue.writeBuffer(buf, 0, data);
      buffers.push(buf);
      feeds[v.name] = ort.Tensor.fromGpuBuffer(buf as never, { dataType: 'float32', dims: v.shape });
    }
    const run = async () => {
      const out = await session.run(feeds);
      await device.queue.onSubmittedWorkDone();
      for (const t of Object.values(out)) t.dispose();
    };
    const release = async () => {
      await session.release();
      for (const b of buffers) b.destroy();
    };
    return { run, release };
  };

  const wasm = async (graph: OnnxGraph) => {
    const session = await ort.InferenceSession.create(onnxModel(graph), { executionProviders: ['wasm'] });
    const feeds = Object.fromEntries(
      graph.inputs.map((v) => [v.name, new ort.Tensor('float32', randomData(numel(v.shape)), v.shape)]),
    );
    return { run: async () => void (await session.run(feeds)), release: () => session.release() };
  };

  // Probe the WebGPU EP once on a tiny graph; anything that fails there fails everywhere.
  const probe: OnnxGraph = {
    name: 'probe',
    nodes: [{ opType: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
    inputs: [
      { name: 'a', shape: [4, 4] },
      { name: 'b', shape: [4, 4] },
    ],
    outputs: [{ name: 'y', shape: [4, 4] }],
  };
  try {
    const p = await webgpu(probe);
    await p.run();
    await p.release();
    return { ep: 'webgpu', prepare: webgpu };
  } catch (e) {
    return { ep: 'wasm', fallbackReason: String(e).split('\n')[0], prepare: wasm };
  }
}
