"""Writes public/models/micro-latent/ (an untrained, seeded latent-space test model: UNet on 8×8×4 latents, a
2-block AutoencoderKL 16 px ↔ 8×8 as ONNX) and golden/micro_latent.safetensors (the VAE and a DDIM sample in torch).

It is micro-test's latent twin: the studio's latent path (VAE encode before training, decode after sampling, in
onnxruntime-web) runs end to end on it in seconds, and the golden tensors tell a codec or scheduler bug from noise.
Its samples are noise. Deterministic: a rerun writes byte-identical safetensors.

Usage: /usr/bin/python3 tools/reference/make_micro_latent.py
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sample  # noqa: E402
from common import HERE, ROOT, SCHEDULER_CONFIG  # noqa: E402
from make_micro import MICRO_UNET_CONFIG, write_unet_and_text  # noqa: E402
from st_io import load_file, save_file  # noqa: E402
from unet import UNet2DConditionModel, count_params  # noqa: E402
from vae import AutoencoderKL, DecoderPart, EncoderPart  # noqa: E402

OUT = os.path.join(ROOT, 'public', 'models', 'micro-latent')
GOLDEN = os.path.join(HERE, 'golden', 'micro_latent.safetensors')
SEED = 20261130
STEPS, GUIDANCE = 4, 3.0
PROMPT = 'dog face'

UNET_CONFIG = dict(MICRO_UNET_CONFIG, in_channels=4, out_channels=4, sample_size=8)

# SD 1.5's schedule under DDPMScheduler's keys
LATENT_SCHEDULER_CONFIG = dict(SCHEDULER_CONFIG, beta_start=0.00085, beta_end=0.012, beta_schedule='scaled_linear',
                               clip_sample=False, set_alpha_to_one=False, steps_offset=1)

VAE_CONFIG = {
    '_class_name': 'AutoencoderKL',
    '_diffusers_version': '0.27.0',
    'in_channels': 3,
    'out_channels': 3,
    'down_block_types': ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
    'up_block_types': ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
    'block_out_channels': [8, 16],
    'layers_per_block': 1,
    'act_fn': 'silu',
    'latent_channels': 4,
    'norm_num_groups': 4,
    'sample_size': 16,
    'scaling_factor': 0.18215,
}

README = """# micro-latent — an untrained latent-space test model

Seeded random weights (seed {seed}), written by `tools/reference/make_micro_latent.py`. **Not a text-to-image
model**: its samples are noise. It is `micro-test`'s latent (Stable Diffusion-style) twin: a diffusers UNet on
8×8×4 latents (`config.json`: micro-test's UNet with 4 channels in and out), SD 1.5's noise schedule
(`scaled_linear` betas 0.00085–0.012, ε prediction, no x₀ clip, `steps_offset` 1, `set_alpha_to_one` false), a
2-block diffusers `AutoencoderKL` between 16 px images and 8×8 latents as two ONNX files, micro-test's 1-layer
text encoder of width 32 and emoji-tiny's word-level tokenizer. It lets the studio's latent path (VAE encode before
training, decode after sampling) run end to end on a software GPU in seconds.

Parameters: UNet {unet_params}; text encoder {text_params}; VAE {vae_params} (encoder + `quant_conv` {enc_params},
`post_quant_conv` + decoder {dec_params}). The VAE's GroupNorm scales and shifts are randomized (`1 + 0.2·N(0,1)`,
`0.2·N(0,1)`) rather than left at 1 and 0; with torch's init otherwise, decoded pixels already come out of
order 0.3–1 (std ≈ 0.3, extremes ≈ ±1.3), so the decoder is not rescaled. As in micro-test, the UNet's `conv_out`
weight is multiplied by 4 so that its noise prediction has unit-order values.

## VAE interface (`vae_config.json` is diffusers' `vae/config.json`)

| file | input | output |
|---|---|---|
| `vae_encoder.onnx` | `sample` float32 [batch, 3, H, W] | `latent_parameters` float32 [batch, 8, H/2, W/2] |
| `vae_decoder.onnx` | `latent_sample` float32 [batch, 4, h, w] | `sample` float32 [batch, 3, 2h, 2w] |

Pixels are in [−1, 1] (decoded ones about). Batch and spatial sizes are dynamic (H, W even); ONNX opset 14.
`latent_parameters` is `quant_conv`'s output, the latent distribution's mean (channels 0–3) then its log-variance
(4–7), as optimum names SD's ONNX encoder output. The studio trains on the mean × `scaling_factor` (0.18215); the
decoder takes latents ÷ `scaling_factor`.

The tokenizer's vocabulary is emoji-tiny's (words of the `emojibase-data` labels and tags, MIT, © Miles Johnson;
see `../emoji-tiny/ATTRIBUTION.md`).
"""


def make_vae():
    vae = AutoencoderKL(VAE_CONFIG)
    with torch.no_grad():
        for m in vae.modules():
            if isinstance(m, torch.nn.GroupNorm):  # so that a swapped or dropped affine shows in the goldens
                m.weight.copy_(1 + 0.2 * torch.randn_like(m.weight))
                m.bias.copy_(0.2 * torch.randn_like(m.bias))
    return vae.eval()


def export_vae(vae, out_dir):
    """vae_encoder.onnx and vae_decoder.onnx with dynamic batch and spatial sizes."""
    f = vae.downscale
    side = VAE_CONFIG['sample_size']
    pixels, latent = {0: 'batch', 2: 'height', 3: 'width'}, {0: 'batch', 2: 'latent_height', 3: 'latent_width'}
    parts = [
        (EncoderPart(vae), torch.zeros(1, 3, side, side), 'vae_encoder.onnx', 'sample', pixels, 'latent_parameters',
         latent),
        (DecoderPart(vae), torch.zeros(1, VAE_CONFIG['latent_channels'], side // f, side // f), 'vae_decoder.onnx',
         'latent_sample', latent, 'sample', pixels),
    ]
    for module, example, name, inp, inp_axes, out, out_axes in parts:
        torch.onnx.export(
            module.eval(), (example,), os.path.join(out_dir, name), opset_version=14, input_names=[inp],
            output_names=[out], dynamic_axes={inp: inp_axes, out: out_axes}, do_constant_folding=True,
        )


def golden_image(gen):
    """[1, 3, 16, 16] in [−1, 1]: a smooth colour pattern plus a little noise."""
    side = VAE_CONFIG['sample_size']
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing='ij')
    smooth = torch.stack([torch.sin(3 * xx + 1), torch.cos(2 * yy - xx), xx * yy]) * 0.7
    return (smooth + 0.2 * torch.randn(3, side, side, generator=gen)).clamp(-1, 1)[None]


@torch.no_grad()
def write_golden(vae, text, tok):
    """golden/micro_latent.safetensors (GOLDEN.md): the VAE both ways, and a DDIM sample decoded, on the UNet read
    back from the f16 file as the studio reads it."""
    scaling = VAE_CONFIG['scaling_factor']
    gen = torch.Generator().manual_seed(SEED)
    image = golden_image(gen)
    latents = torch.randn(1, 4, 8, 8, generator=gen)
    params = vae.encode_parameters(image)

    unet = UNet2DConditionModel(UNET_CONFIG)
    unet.load_state_dict({k: v.float() for k, v in load_file(os.path.join(OUT, 'unet.safetensors')).items()})
    unet.eval()
    noise, _ = sample.seed_streams([1], (4, 8, 8))  # torch.randn(1, 4, 8, 8) of manual_seed(1)
    ehs = text(tok(['', PROMPT]))  # uncond, cond
    x = sample.ddim_sample(unet, ehs[1:], ehs[:1], noise, LATENT_SCHEDULER_CONFIG, steps=STEPS, guidance=GUIDANCE)
    tensors = {
        'inputs.image': image, 'inputs.latents': latents, 'inputs.noise': noise, 'inputs.encoder_hidden_states': ehs,
        'vae.latent_parameters': params, 'vae.latent_mean': vae.encode_mean(image),
        'vae.decoded': vae.decode(latents / scaling), 'x.after_4': x, 'pipeline.decoded': vae.decode(x / scaling),
        'meta.scaling_factor': torch.tensor([scaling]), 'meta.steps': torch.tensor([float(STEPS)]),
        'meta.guidance': torch.tensor([GUIDANCE]),
    }
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, GOLDEN)
    for k in ('vae.latent_mean', 'vae.latent_parameters', 'vae.decoded', 'x.after_4', 'pipeline.decoded'):
        t = tensors[k]
        print(f'{k}: {list(t.shape)} range [{t.min():.3f}, {t.max():.3f}] std {t.std():.3f}')


def main():
    torch.set_num_threads(1)  # one reduction order, so reruns write the same bytes
    torch.manual_seed(SEED)
    os.makedirs(OUT, exist_ok=True)
    unet, text, tok = write_unet_and_text(OUT, UNET_CONFIG, LATENT_SCHEDULER_CONFIG)

    vae = make_vae()
    with open(os.path.join(OUT, 'vae_config.json'), 'w') as f:
        json.dump(VAE_CONFIG, f, indent=2)
    export_vae(vae, OUT)
    enc, dec = count_params(EncoderPart(vae)), count_params(DecoderPart(vae))
    with open(os.path.join(OUT, 'README.md'), 'w') as f:
        f.write(README.format(seed=SEED, unet_params=count_params(unet), text_params=count_params(text),
                              vae_params=count_params(vae), enc_params=enc, dec_params=dec))
    write_golden(vae, text, tok)
    for name in sorted(os.listdir(OUT)):
        print(f'{name}: {os.path.getsize(os.path.join(OUT, name)) / 1e3:.1f} kB')
    print(f'{os.path.relpath(GOLDEN, ROOT)}: {os.path.getsize(GOLDEN) / 1e3:.1f} kB')


if __name__ == '__main__':
    main()
