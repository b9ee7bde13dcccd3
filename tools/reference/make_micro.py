"""Writes public/models/micro-test/: an untrained (seeded random) 16×16 model with the emoji-tiny file layout.

It exists so the studio's real-trainer e2e can run the whole flow (train, pause, reload, resume, export, import,
generate offline) inside the default test command: on Chromium's software adapter an emoji-tiny step takes ~20 s
and a fresh worker compiles for minutes, this model's steps take a fraction of a second. Its samples are noise.
The studio opens it with `?model=micro-test`; nothing else uses it.

Usage: /usr/bin/python3 tools/reference/make_micro.py
"""

import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MODEL_DIR, ROOT, SCHEDULER_CONFIG  # noqa: E402
from export_default import export_onnx  # noqa: E402
from st_io import save_file  # noqa: E402
from text import TextEncoder, Tokenizer  # noqa: E402
from unet import UNet2DConditionModel, count_params  # noqa: E402

OUT = os.path.join(ROOT, 'public', 'models', 'micro-test')
SEED = 20261128

MICRO_UNET_CONFIG = {
    '_class_name': 'UNet2DConditionModel',
    '_diffusers_version': '0.27.0',
    'sample_size': 16,
    'in_channels': 3,
    'out_channels': 3,
    'center_input_sample': False,
    'flip_sin_to_cos': True,
    'freq_shift': 0,
    'down_block_types': ['DownBlock2D', 'CrossAttnDownBlock2D'],
    'mid_block_type': 'UNetMidBlock2DCrossAttn',
    'up_block_types': ['CrossAttnUpBlock2D', 'UpBlock2D'],
    'only_cross_attention': False,
    'block_out_channels': [32, 32],
    'layers_per_block': 1,
    'downsample_padding': 1,
    'mid_block_scale_factor': 1,
    'act_fn': 'silu',
    'norm_num_groups': 8,
    'norm_eps': 1e-5,
    'cross_attention_dim': 32,
    'attention_head_dim': 2,  # number of heads (SD 1.5 naming): 2 heads of 16 channels
    'num_attention_heads': None,
    'use_linear_projection': False,
}

README = """# micro-test — an untrained test model

Seeded random weights (seed {seed}), written by `tools/reference/make_micro.py`. **Not a text-to-image model**:
its samples are noise. It has the layout of `emoji-tiny` (pixel space, 16×16, a diffusers UNet with cross-attention
in one down block, the mid block and one up block; a 1-layer text encoder of width 32 in ONNX; emoji-tiny's
word-level tokenizer) so the studio's real-trainer end-to-end test can run every step of the flow on a software
GPU in seconds. Open the studio with `?model=micro-test` to use it.

UNet parameters: {unet_params}; text encoder parameters: {text_params}. The tokenizer's vocabulary is emoji-tiny's
(words of the `emojibase-data` labels and tags, MIT, © Miles Johnson; see `../emoji-tiny/ATTRIBUTION.md`).
"""


def write_unet_and_text(out, unet_config, scheduler_config):
    """Writes a seeded random UNet (f16 unet.safetensors, config.json), scheduler_config.json, emoji-tiny's
    tokenizer and a 1-layer text encoder of width cross_attention_dim (text_encoder.onnx) into `out`, drawing
    from torch's global generator; returns (unet, text, tokenizer)."""
    unet = UNet2DConditionModel(unet_config)
    with torch.no_grad():
        # Random init leaves conv_out's output near zero; scale it so the noise prediction has unit-order values
        # (the trainer's loss and the LoRA gradients are then of the same order as on a trained model).
        unet.conv_out.weight.mul_(4.0)
    save_file({k: v.to(torch.float16) for k, v in unet.state_dict().items()}, os.path.join(out, 'unet.safetensors'),
              {'format': 'pt'})
    with open(os.path.join(out, 'config.json'), 'w') as f:
        json.dump(unet_config, f, indent=2)
    with open(os.path.join(out, 'scheduler_config.json'), 'w') as f:
        json.dump(scheduler_config, f, indent=2)
    shutil.copyfile(os.path.join(MODEL_DIR, 'tokenizer.json'), os.path.join(out, 'tokenizer.json'))
    tok = Tokenizer.from_json(os.path.join(out, 'tokenizer.json'))
    text = TextEncoder(len(tok.vocab), dim=unet_config['cross_attention_dim'], layers=1, heads=2,
                       max_length=tok.max_length)
    text.eval()
    export_onnx(text, tok, os.path.join(out, 'text_encoder.onnx'))
    return unet, text, tok


def main():
    torch.manual_seed(SEED)
    os.makedirs(OUT, exist_ok=True)
    unet, text, _ = write_unet_and_text(OUT, MICRO_UNET_CONFIG, SCHEDULER_CONFIG)
    with open(os.path.join(OUT, 'README.md'), 'w') as f:
        f.write(README.format(seed=SEED, unet_params=count_params(unet), text_params=count_params(text)))
    for name in sorted(os.listdir(OUT)):
        print(f'{name}: {os.path.getsize(os.path.join(OUT, name)) / 1e3:.1f} kB')


if __name__ == '__main__':
    main()
