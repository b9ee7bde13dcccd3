// Importing a model folder from disk: which picked files become which stored ones (the studio's flat layout or
// diffusers' with optimum's ONNX exports), what is missing, and safe unique names. The OPFS copy itself runs in
// Chromium (e2e/studio-models.e2e.test.ts).
import { describe, expect, it } from 'vitest';
import { pickedFolder, planImport, safeModelName, uniqueModelName } from './localModels';

const blob = (n: number) => new Blob([new Uint8Array(n)]);
const picked = (...paths: string[]) => paths.map((path, i) => ({ path, file: blob(i + 1) }));

describe('planImport', () => {
  it("maps the studio's flat layout one to one", () => {
    const plan = planImport('Emoji Tiny!', [
      ...picked(
        'config.json',
        'unet.safetensors',
        'text_encoder.onnx',
        'scheduler_config.json',
        'tokenizer.json',
        'sampling.json',
      ),
      ...picked('notes/other.bin'),
    ]);
    expect(plan.name).toBe('emoji-tiny');
    expect(plan.missing).toEqual([]);
    expect(plan.files.map((f) => f.target).sort()).toEqual([
      'config.json',
      'sampling.json',
      'scheduler_config.json',
      'text_encoder.onnx',
      'tokenizer.json',
      'unet.safetensors',
    ]);
    expect(plan.bytes).toBe(1 + 2 + 3 + 4 + 5 + 6);
  });

  it("takes diffusers' folders with optimum's ONNX parts under the flat names", () => {
    const plan = planImport('sd15', [
      ...picked(
        'unet/config.json',
        'unet/diffusion_pytorch_model.fp16.safetensors',
        'text_encoder/model.onnx',
        'scheduler/scheduler_config.json',
        'tokenizer/vocab.json',
        'tokenizer/merges.txt',
        'tokenizer/special_tokens_map.json',
        'vae_decoder/model.onnx',
        'vae_encoder/model.onnx',
        'vae/config.json',
      ),
    ]);
    expect(plan.missing).toEqual([]);
    expect(Object.fromEntries(plan.files.map((f) => [f.target, f.source.path]))).toEqual({
      'config.json': 'unet/config.json',
      'unet.safetensors': 'unet/diffusion_pytorch_model.fp16.safetensors',
      'text_encoder.onnx': 'text_encoder/model.onnx',
      'scheduler_config.json': 'scheduler/scheduler_config.json',
      'vae_decoder.onnx': 'vae_decoder/model.onnx',
      'vae_encoder.onnx': 'vae_encoder/model.onnx',
      'vae_config.json': 'vae/config.json',
      'tokenizer/vocab.json': 'tokenizer/vocab.json',
      'tokenizer/merges.txt': 'tokenizer/merges.txt',
      'tokenizer/special_tokens_map.json': 'tokenizer/special_tokens_map.json',
    });
  });

  it('says what is missing', () => {
    const plan = planImport(
      'x',
      picked('config.json', 'vocab.json', 'vae_encoder.onnx', 'vae/diffusion_pytorch_model.safetensors'),
    );
    expect(plan.missing).toEqual([
      expect.stringMatching(/^unet\.safetensors \(or unet\/diffusion_pytorch_model\.safetensors/),
      expect.stringMatching(/^text_encoder\.onnx/),
      expect.stringMatching(/^scheduler_config\.json/),
      expect.stringMatching(/^a tokenizer/),
      expect.stringMatching(/VAE encoder without its decoder/),
      expect.stringMatching(/PyTorch format .* export it to ONNX/),
    ]);
  });
});

describe('model names', () => {
  it('are safe and unique', () => {
    expect(safeModelName('  My SD 1.5 (fp16) ')).toBe('my-sd-1-5-fp16');
    expect(safeModelName('../..')).toBe('model');
    expect(safeModelName('x'.repeat(80)).length).toBe(64);
    expect(uniqueModelName('sd', ['sd', 'sd-2'])).toBe('sd-3');
    expect(uniqueModelName('sd', [])).toBe('sd');
  });

  it('come from the picked folder, whose name is stripped from the paths', () => {
    const f = (rel: string) =>
      Object.assign(new File(['x'], rel.split('/').pop()!), { webkitRelativePath: rel });
    const p = pickedFolder([f('my-model/config.json'), f('my-model/tokenizer/vocab.json')]);
    expect(p.folderName).toBe('my-model');
    expect(p.files.map((x) => x.path)).toEqual(['config.json', 'tokenizer/vocab.json']);
  });
});
