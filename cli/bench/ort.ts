// onnxruntime-web in Node for the kernel benchmark: `navigator.gpu` = Dawn's GPU object, so its WebGPU EP
// runs on the same adapter as our kernels.
import path from 'node:path';
import { createOrtRunnerWith, type OrtRunner } from './ortRunner';

export type { OrtRunner } from './ortRunner';

/**
 * Dawn's Node binding rejects queue.writeBuffer from a view on a SharedArrayBuffer ("Invalid argument"),
 * and ORT's threaded WASM heap is one; copy such views to an ordinary buffer first.
 */
function allowSharedArrayBufferWrites(queue: GPUQueue): void {
  const proto = Object.getPrototypeOf(queue) as GPUQueue & { __sabShim?: boolean };
  if (proto.__sabShim) return;
  const writeBuffer = proto.writeBuffer;
  proto.writeBuffer = function (
    this: GPUQueue,
    buffer: GPUBuffer,
    offset: number,
    data: BufferSource | SharedArrayBuffer,
    dataOffset = 0,
    size?: number,
  ) {
    if (ArrayBuffer.isView(data) && data.buffer instanceof SharedArrayBuffer) {
      const bpe = (data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
      const count = size ?? data.byteLength / bpe - dataOffset;
      const copy = new Uint8Array(data.buffer, data.byteOffset + dataOffset * bpe, count * bpe).slice();
      return writeBuffer.call(this, buffer, offset, copy, 0, copy.byteLength);
    }
    return writeBuffer.call(this, buffer, offset, data as BufferSource, dataOffset, size);
  } as GPUQueue['writeBuffer'];
  proto.__sabShim = true;
}

/**
 * Loads onnxruntime-web with `navigator.gpu` = Dawn's GPU object. `ourQueue` (any queue of that GPU) is
 * used to install the SharedArrayBuffer workaround on the shared GPUQueue class.
 */
export async function createOrtRunner(gpuEntry: GPU, ourQueue: GPUQueue): Promise<OrtRunner> {
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: gpuEntry }, configurable: true });
  allowSharedArrayBufferWrites(ourQueue);
  const ort = await import('onnxruntime-web/webgpu');
  return createOrtRunnerWith(ort, path.join(process.cwd(), 'node_modules/onnxruntime-web/dist/'));
}
