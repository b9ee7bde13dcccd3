// The frozen text encoder, run once per prompt in onnxruntime-web (WASM in Node and CI; the browser may
// use its WebGPU EP). Input: token ids [batch, length]; output: last hidden states [batch, length, dim].
import * as ort from 'onnxruntime-web';

export class TextEncoderError extends Error {
  override name = 'TextEncoderError';
}

export interface TextEmbeddings {
  data: Float32Array;
  /** [batch, tokens, dim] */
  shape: [number, number, number];
}

export interface OrtOptions {
  /** Where the onnxruntime-web .wasm/.mjs files are served from (browser); Node finds them itself. */
  wasmPaths?: string;
  executionProviders?: ('wasm' | 'webgpu')[];
  numThreads?: number;
  /**
   * Where a latent model's VAE runs: 'webgpu' (onnxruntime-web's WebGPU EP, falling back to WASM when it cannot
   * start; the browser worker's choice: an SD-size decode is minutes in WASM) or 'wasm' (default; Node, tests).
   */
  vae?: 'webgpu' | 'wasm';
  /**
   * Whether the WebGPU adapter has shader-f16. Without it onnxruntime-web's WebGPU EP still runs a float16 model
   * but computes it wrong (SwiftShader: pixels up to 128/255 off), so a float16 VAE stays on WASM. Unset: assumed.
   */
  webgpuShaderF16?: boolean;
}

let configured = false;

export function configureOrt(opts: OrtOptions): void {
  if (configured) return;
  configured = true;
  if (opts.wasmPaths) ort.env.wasm.wasmPaths = opts.wasmPaths;
  // Threads need cross-origin isolation in browsers; one thread is always available.
  ort.env.wasm.numThreads = opts.numThreads ?? 1;
}

/** An onnxruntime-web session over `bytes` (the text encoder, a VAE part); `fail` words a load error. */
export async function openOrtSession(
  bytes: Uint8Array,
  opts: OrtOptions,
  fail: (why: string) => Error,
): Promise<ort.InferenceSession> {
  configureOrt(opts);
  try {
    return await ort.InferenceSession.create(bytes, {
      executionProviders: opts.executionProviders ?? ['wasm'],
      graphOptimizationLevel: 'all',
    });
  } catch (e) {
    throw fail(`could not be loaded: ${(e as Error).message ?? e}`);
  }
}

export class OnnxTextEncoder {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly inputName: string,
    private readonly outputName: string,
    private readonly idType: 'int64' | 'int32',
  ) {}

  static async load(model: Uint8Array, opts: OrtOptions = {}): Promise<OnnxTextEncoder> {
    const session = await openOrtSession(
      model,
      opts,
      (why) => new TextEncoderError(`text_encoder.onnx ${why}`),
    );
    if (session.inputNames.length < 1) throw new TextEncoderError('text_encoder.onnx has no inputs');
    const inputName = session.inputNames.includes('input_ids') ? 'input_ids' : session.inputNames[0];
    const outputName = session.outputNames.includes('last_hidden_state')
      ? 'last_hidden_state'
      : session.outputNames[0];
    const meta = (session as unknown as { inputMetadata?: { name: string; type?: string }[] }).inputMetadata;
    const declared = meta?.find((m) => m.name === inputName)?.type;
    return new OnnxTextEncoder(session, inputName, outputName, declared === 'int32' ? 'int32' : 'int64');
  }

  /** Encodes token ids (row-major [batch, length]). */
  async encode(ids: ArrayLike<number>, batch: number): Promise<TextEmbeddings> {
    const length = ids.length / batch;
    if (!Number.isInteger(length))
      throw new TextEncoderError(`${ids.length} token ids do not split into ${batch} rows`);
    const tensor =
      this.idType === 'int64'
        ? new ort.Tensor('int64', BigInt64Array.from(Array.from(ids, (v) => BigInt(v))), [batch, length])
        : new ort.Tensor('int32', Int32Array.from(ids), [batch, length]);
    const out = await this.session.run({ [this.inputName]: tensor });
    const t = out[this.outputName];
    if (!t || t.dims.length !== 3) {
      throw new TextEncoderError(
        `text encoder output ${this.outputName} has shape [${t?.dims}], expected [batch, tokens, dim]`,
      );
    }
    const data =
      t.type === 'float32' ? (t.data as Float32Array) : Float32Array.from(t.data as ArrayLike<number>);
    return { data: data.slice(), shape: [t.dims[0], t.dims[1], t.dims[2]] };
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
