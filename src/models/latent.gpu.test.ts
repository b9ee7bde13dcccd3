// The latent path on public/models/micro-latent (a seeded random SD-style folder: UNet on 8×8×4 latents, a
// 2-block AutoencoderKL as vae_encoder.onnx / vae_decoder.onnx) against PyTorch
// (tools/reference/make_micro_latent.py → golden/micro_latent.safetensors): the VAE both ways in onnxruntime-web
// with the scaling factor, the WGSL sampler loop on latents then decoded, training photos encoded and a trainer
// step on them, and the folder errors (a missing decoder, latent channels that do not match the UNet).
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relativeError } from '../autograd/testing';
import { testGpu } from '../gpu/testing';
import { SafetensorsReader } from '../io/safetensors';
import { bytesSource } from '../io/sources';
import { lora2Settings } from '../lora/adapter';
import { Engine } from '../tensor/engine';
import { DEFAULT_TRAINER_CONFIG, Trainer } from '../train/trainer';
import { OnnxVaeCodec, toImage, VAE_DECODER_FILE } from './codec';
import { MemoryFolder, ModelFolderError } from './folder';
import { DirectoryFolder } from './folderNode';
import { DiffusionModel } from './pipeline';
import { Rng } from './rng';
import { NoiseSchedule } from './schedulers';

const DIR = 'public/models/micro-latent';

/** The folder in memory, with files replaced (text or bytes) or removed (null). */
function variant(changes: Record<string, string | Uint8Array<ArrayBuffer> | null>): MemoryFolder {
  const files = new Map(readdirSync(DIR).map((f) => [f, new Uint8Array(readFileSync(`${DIR}/${f}`))]));
  for (const [name, content] of Object.entries(changes)) {
    if (content === null) files.delete(name);
    else files.set(name, typeof content === 'string' ? new TextEncoder().encode(content) : content);
  }
  return new MemoryFolder('micro-latent/', files);
}

describe('latent models: VAE codec and the pipeline on micro-latent vs PyTorch', { timeout: 300_000 }, () => {
  let engine: Engine;
  let model: DiffusionModel;
  let golden: SafetensorsReader;
  const read = (name: string) => golden.readFloat32(name);
  beforeAll(async () => {
    engine = new Engine(await testGpu());
    model = await DiffusionModel.load(engine, new DirectoryFolder(DIR));
    golden = await SafetensorsReader.open(
      bytesSource(new Uint8Array(readFileSync('tools/reference/golden/micro_latent.safetensors'))),
    );
  });
  afterAll(async () => {
    await model?.dispose();
    engine?.destroy();
  });

  it('loads as a latent model: 16 px images, 8×8×4 latents', () => {
    expect(model.codec.kind).toBe('vae');
    expect(model.codec.canEncode).toBe(true);
    expect(model.resolution).toBe(16);
    expect(model.latentSize).toBe(8);
    expect(model.inputShape).toEqual([4, 8, 8]);
  });

  it("encodes to the latent mean × scaling_factor and decodes latents ÷ scaling_factor, as torch's VAE", async () => {
    const scale = (await read('meta.scaling_factor'))[0];
    expect(scale).toBeCloseTo(0.18215, 6);
    const mean = await read('vae.latent_mean');
    const encoded = await model.codec.encode(await read('inputs.image'), 16);
    const encErr = relativeError(
      encoded,
      mean.map((v) => v * scale),
    );
    const decoded = await model.codec.decode(await read('inputs.latents'), 8);
    const decErr = relativeError(decoded, await read('vae.decoded'));
    console.log(
      `micro-latent VAE vs torch: encode rel err ${encErr.toExponential(2)}, decode ${decErr.toExponential(2)}`,
    );
    expect(encErr).toBeLessThan(1e-4);
    expect(decErr).toBeLessThan(1e-4);
  });

  it('runs an all-float16 VAE export (f16 input and output) through the same codec, within f16 rounding', async () => {
    // src/models/fixtures/micro-latent-f16: this VAE's ONNX with every weight, activation and tensor in float16
    // (tools/reference/make_f16_vae.py), as web ports ship SD's VAE.
    const f16 = (name: string) =>
      new Uint8Array(readFileSync(`src/models/fixtures/micro-latent-f16/${name}`));
    const codec = await OnnxVaeCodec.load(
      variant({ 'vae_encoder.onnx': f16('vae_encoder.onnx'), [VAE_DECODER_FILE]: f16(VAE_DECODER_FILE) }),
    );
    try {
      const scale = (await read('meta.scaling_factor'))[0];
      const encoded = await codec.encode(await read('inputs.image'), 16);
      const encErr = relativeError(
        encoded,
        (await read('vae.latent_mean')).map((v) => v * scale),
      );
      const decErr = relativeError(
        await codec.decode(await read('inputs.latents'), 8),
        await read('vae.decoded'),
      );
      console.log(
        `micro-latent f16 VAE vs torch f32: encode rel err ${encErr.toExponential(2)}, decode ${decErr.toExponential(2)}`,
      );
      // f16 carries 11 significant bits (4.9e-4 relative per rounding); a few layers of it stay well under 1e-2.
      expect(encErr).toBeLessThan(1e-2);
      expect(decErr).toBeLessThan(1e-2);
    } finally {
      await codec.dispose();
    }
  });

  it("runs the sampler on latents and decodes: torch's 4 DDIM steps from the same noise", async () => {
    const ehs = await read('inputs.encoder_hidden_states'); // [2, 16, 32]: uncond, cond
    const half = ehs.length / 2;
    const x = await model.denoise(
      await read('inputs.noise'),
      { data: ehs.slice(0, half), shape: [1, 16, 32] },
      { data: ehs.slice(half), shape: [1, 16, 32] },
      { steps: 4, guidance: 3, sampler: 'ddim', rng: new Rng(0) },
    );
    const xErr = relativeError(x, await read('x.after_4'));
    const pixels = await model.codec.decode(x, 8);
    const pixErr = relativeError(pixels, await read('pipeline.decoded'));
    console.log(
      `micro-latent 4 DDIM steps vs torch: latents rel err ${xErr.toExponential(2)}, decoded ${pixErr.toExponential(2)}`,
    );
    expect(xErr).toBeLessThan(1e-3);
    expect(pixErr).toBeLessThan(1e-3);
    // generate() is that loop from its own noise, then the decoder: a 16×16 image, the same for the same seed.
    const opts = { prompt: 'dog face', seed: 3, steps: 2, guidance: 3, sampler: 'ddim' as const };
    const a = await model.generate(opts);
    expect([a.width, a.height]).toEqual([16, 16]);
    expect(Array.from(a.data)).toEqual(Array.from((await model.generate(opts)).data));
    const noise = new Rng(3).normals(4 * 8 * 8, 1);
    const latents = await model.denoise(noise, await model.embed(''), await model.embed('dog face'), {
      ...opts,
      rng: new Rng(3),
    });
    expect(Array.from(a.data)).toEqual(Array.from(toImage(await model.codec.decode(latents, 8), 3, 16).data));
  });

  it('encodes training photos through the VAE and trains on the latents', async () => {
    const rng = new Rng(11);
    const photos = [0, 1].map(() => ({
      width: 16,
      height: 16,
      data: Uint8ClampedArray.from({ length: 16 * 16 * 4 }, (_, i) => (i % 4 === 3 ? 255 : rng.int(256))),
    }));
    const images = await model.encodeImages(photos);
    expect(images.map((i) => i.length)).toEqual([4 * 8 * 8, 4 * 8 * 8]);
    await expect(
      model.encodeImages([{ width: 32, height: 32, data: new Uint8Array(32 * 32 * 4) }]),
    ).rejects.toThrow(/trains on 16×16/);
    const trainer = await Trainer.create(
      engine,
      model.unet,
      new NoiseSchedule(model.scheduler),
      { images, imageShape: model.inputShape, embedding: await model.embed('<v1> dog face') },
      {
        ...DEFAULT_TRAINER_CONFIG,
        sessionId: 'latent',
        steps: 2,
        checkpointEvery: 0,
        contributionsEvery: 0,
        lora: lora2Settings(),
      },
    );
    try {
      const losses: number[] = [];
      expect(await trainer.run((p) => losses.push(p.loss))).toBe('done');
      expect(losses.length).toBeGreaterThan(0);
      for (const l of losses) expect(Number.isFinite(l) && l > 0).toBe(true);
    } finally {
      trainer.release();
    }
  });

  it('refuses a folder whose VAE does not fit: no decoder, or latent channels other than the UNet takes', async () => {
    const noDecoder = await DiffusionModel.load(engine, variant({ [VAE_DECODER_FILE]: null })).catch(
      (e) => e,
    );
    expect(noDecoder).toBeInstanceOf(ModelFolderError);
    expect(noDecoder.message).toMatch(
      /micro-latent\/: vae_decoder.onnx: is missing \(the folder has vae_encoder.onnx\)/,
    );
    const noVae = await DiffusionModel.load(
      engine,
      variant({ [VAE_DECODER_FILE]: null, 'vae_encoder.onnx': null }),
    ).catch((e) => e);
    expect(noVae.message).toMatch(/config.json: in_channels is 4: a latent model needs vae_decoder.onnx/);
    const vaeConfig = JSON.parse(readFileSync(`${DIR}/vae_config.json`, 'utf8'));
    const wrong = await DiffusionModel.load(
      engine,
      variant({ 'vae_config.json': JSON.stringify({ ...vaeConfig, latent_channels: 8 }) }),
    ).catch((e) => e);
    expect(wrong).toBeInstanceOf(ModelFolderError);
    expect(wrong.message).toMatch(/in_channels is 4 but the VAE has 8 latent channels/);
    // A decoder-only folder samples but cannot train.
    const decoderOnly = await OnnxVaeCodec.load(variant({ 'vae_encoder.onnx': null }));
    expect(decoderOnly.canEncode).toBe(false);
    await expect(decoderOnly.encode(new Float32Array(3 * 16 * 16), 16)).rejects.toThrow(
      /no vae_encoder.onnx/,
    );
    await decoderOnly.dispose();
  });
});
