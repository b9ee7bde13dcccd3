// Codec pieces that need no GPU or ONNX: vae_config.json (diffusers' AutoencoderKL config) with SD 1.5's defaults
// and clear errors, and the pixel codec (identity on 3 channels, grey on 1).
import { describe, expect, it } from 'vitest';
import { parseVaeConfig, PixelCodec } from './codec';
import { ModelFolderError } from './folder';

describe('vae_config.json', () => {
  it("reads scaling_factor, latent_channels and the downscale; SD 1.5's VAE for what is missing", () => {
    expect(parseVaeConfig('m/', {})).toEqual({ scalingFactor: 0.18215, latentChannels: 4, downscale: 8 });
    expect(
      parseVaeConfig('m/', { scaling_factor: 0.13025, latent_channels: 4, block_out_channels: [8, 16] }),
    ).toEqual({ scalingFactor: 0.13025, latentChannels: 4, downscale: 2 });
  });

  it('refuses bad values with the folder, file and key', () => {
    for (const [raw, pattern] of [
      [[1], /m\/: vae_config.json: must be a JSON object/],
      [{ scaling_factor: 0 }, /"scaling_factor" must be a positive number \(got 0\)/],
      [{ latent_channels: 2.5 }, /"latent_channels" must be a positive integer/],
      [{ block_out_channels: [] }, /"block_out_channels" must be a list of 1 to 6 widths/],
      [{ shift_factor: 0.0609 }, /"shift_factor" is not supported/],
    ] as const) {
      expect(() => parseVaeConfig('m/', raw)).toThrow(ModelFolderError);
      expect(() => parseVaeConfig('m/', raw)).toThrow(pattern);
    }
  });
});

describe('pixel codec', () => {
  const img = Float32Array.from({ length: 3 * 4 }, (_, i) => i / 12 - 0.5); // 3 × 2×2

  it('is the identity on three channels', async () => {
    const c = new PixelCodec(3);
    expect(c.downscale).toBe(1);
    expect(await c.encode(img, 2)).toBe(img);
    expect(await c.decode(img, 2)).toBe(img);
    await expect(c.encode(img, 3)).rejects.toThrow(/not a 3×3×3 image/);
  });

  it('averages the planes for a grey model and repeats the plane back', async () => {
    const c = new PixelCodec(1);
    const grey = await c.encode(img, 2);
    expect(Array.from(grey)).toEqual(
      [0, 1, 2, 3].map((i) => (img[i] + img[4 + i] + img[8 + i]) / 3).map(Math.fround),
    );
    expect(Array.from(await c.decode(grey, 2))).toEqual([...grey, ...grey, ...grey]);
  });
});
