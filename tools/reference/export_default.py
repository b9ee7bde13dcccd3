"""Exports the pretrained default model (EMA weights of .data/ckpt.pt) to public/models/emoji-tiny/ and renders
the torch reference grid docs/default-model-grid-torch.png.

Usage: python3 tools/reference/export_default.py [--no-grid]
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (DATA, HERE, MODEL_DIR, ROOT, SCHEDULER_CONFIG, TINY_UNET_CONFIG, read_sampling,  # noqa: E402
                    use_openblas)
from st_io import save_file  # noqa: E402
from text import TextEncoder, Tokenizer  # noqa: E402

ATTRIBUTION = """# emoji-tiny — attribution

A small pixel-space text-to-image model (32×32 RGB) pretrained by LoRA² Studio on emoji artwork.

- **Images (Google / Noto emoji)**: from the npm package `emoji-datasource-google` {g}; the Noto Emoji
  artwork is licensed under the Apache License 2.0 (https://github.com/googlefonts/noto-emoji/blob/main/LICENSE).
- **Images (Twemoji)**: from the npm package `emoji-datasource-twitter` {t}; Twemoji graphics © Twitter, Inc.
  and other contributors, licensed under CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/),
  https://github.com/jdecked/twemoji.
- **Labels and tags**: `emojibase-data` {e} (MIT, © Miles Johnson), and short names from `emoji-datasource`
  (MIT, © Cal Henderson).

The weights in this folder (`unet.safetensors`, `text_encoder.onnx`) were trained on images derived
from the artwork above (composited on white, downscaled to 32×32); samples may resemble the originals.
The six designs listed in `tools/reference/holdout.json` were held out of training.
"""


def pkg_version(name):
    with open(os.path.join(ROOT, 'node_modules', name, 'package.json')) as f:
        return json.load(f)['version']


def export_onnx(text, tok, path):
    ids = tok(['grinning face', '<v1> dog'])
    torch.onnx.export(
        text, (ids,), path, opset_version=14, input_names=['input_ids'], output_names=['last_hidden_state'],
        dynamic_axes={'input_ids': {0: 'batch'}, 'last_hidden_state': {0: 'batch'}}, do_constant_folding=True,
    )
    # Reference values for the ORT-web check (tools/reference/verify_onnx.mjs).
    with torch.no_grad():
        out = text(ids)
    return {'prompts': ['grinning face', '<v1> dog'], 'input_ids': ids.tolist(),
            'last_hidden_state_first8': out[:, :, :8].reshape(-1).tolist(),
            'last_hidden_state_sum': float(out.sum()), 'shape': list(out.shape)}


def write_tiny_forward_check(unet_sd, text, tok):
    """golden/emoji_tiny_forward.safetensors: the exported emoji-tiny UNet (weights as stored, widened to f32) on
    fixed inputs, so the engine can be checked on the shipped config and weights too."""
    from unet import UNet2DConditionModel

    unet = UNet2DConditionModel(TINY_UNET_CONFIG)
    unet.load_state_dict({k: v.float() for k, v in unet_sd.items()})
    unet.eval()
    gen = torch.Generator().manual_seed(7)
    sample = torch.randn(2, 3, 32, 32, generator=gen)
    timestep = torch.tensor([500.0, 20.0])
    ids = tok(['grinning face', ''])
    with torch.no_grad():
        ehs = text(ids)
        out = unet(sample, timestep, ehs)
    save_file({'inputs.sample': sample, 'inputs.timestep': timestep, 'inputs.input_ids': ids,
               'inputs.encoder_hidden_states': ehs, 'forward.out': out},
              os.path.join(HERE, 'golden', 'emoji_tiny_forward.safetensors'))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--no-grid', action='store_true')
    ap.add_argument('--dtype', default='float16', choices=['float16', 'float32'])
    ap.add_argument('--ckpt', default=os.path.join(DATA, 'ckpt.pt'))
    ap.add_argument('--out-dir', default=MODEL_DIR)
    ap.add_argument('--guidance', type=float, default=None,
                    help='recommended guidance written to sampling.json (default: the value already there, else 5); '
                         'the studio, npm run sample and sample.py start from it')
    ap.add_argument('--recompute-eps', default=None, choices=['true', 'false'],
                    help="sampling.json's recomputeEpsilon: DDIM takes epsilon from the clipped x0 (default: as there)")
    ap.add_argument('--note', default=None, help='free text stored in training.json (e.g. how the run was resumed)')
    args = ap.parse_args(argv)
    out_dir = args.out_dir
    torch.set_num_threads(2)
    ck = torch.load(args.ckpt)
    os.makedirs(out_dir, exist_ok=True)
    tok = Tokenizer(ck['vocab'], max_length=16)

    dtype = getattr(torch, args.dtype)
    unet_sd = {k: v.to(dtype) for k, v in ck['ema_unet'].items()}
    save_file(unet_sd, os.path.join(out_dir, 'unet.safetensors'), {'format': 'pt'})
    with open(os.path.join(out_dir, 'config.json'), 'w') as f:
        json.dump(TINY_UNET_CONFIG, f, indent=2)
    with open(os.path.join(out_dir, 'scheduler_config.json'), 'w') as f:
        json.dump(SCHEDULER_CONFIG, f, indent=2)
    with open(os.path.join(out_dir, 'tokenizer.json'), 'w') as f:
        json.dump(tok.to_json(), f, separators=(',', ':'))
    sampling = read_sampling(out_dir)
    if args.guidance is not None:
        sampling['guidance'] = args.guidance
    if args.recompute_eps is not None:
        sampling['recomputeEpsilon'] = args.recompute_eps == 'true'
    with open(os.path.join(out_dir, 'sampling.json'), 'w') as f:
        json.dump(sampling, f, indent=2)

    sd = ck['ema_text']
    text = TextEncoder(len(tok.vocab), dim=sd['token_embedding.weight'].shape[1], max_length=tok.max_length)
    text.load_state_dict(sd)
    text.eval()
    onnx_check = export_onnx(text, tok, os.path.join(out_dir, 'text_encoder.onnx'))
    check = os.path.join(HERE, 'golden', 'text_encoder_check.json')
    if out_dir != MODEL_DIR:
        check = out_dir.rstrip('/') + '.text_encoder_check.json'
    with open(check, 'w') as f:
        json.dump(onnx_check, f)

    if out_dir == MODEL_DIR:
        write_tiny_forward_check(unet_sd, text, tok)

    hist = ck['history']
    last = hist[-10:]
    training = {
        'model': 'emoji-tiny',
        'pixel_space': True,
        'vae': None,
        'resolution': TINY_UNET_CONFIG['sample_size'],
        'unet_dtype': args.dtype,
        'unet_params': sum(v.numel() for v in ck['unet'].values()),
        'text_encoder': dict(text.config, params=sum(v.numel() for v in sd.values()), arch=(
            'token + learned position embeddings, pre-LN transformer layers (fused qkv, GELU MLP x4), bidirectional '
            'attention over all max_length positions incl. PAD, final LayerNorm; output last_hidden_state')),
        'steps': ck['step'],
        'wall_seconds': round(ck['wall_seconds'], 1),
        'final_loss': sum(h['loss'] for h in last) / max(1, len(last)),
        'final_loss_window': f'mean of the last {len(last)} logged means of 20 steps',
        'settings': ck['settings'],
        'runs': ck.get('runs'),
        'note': args.note,
        'corpus': json.load(open(os.path.join(HERE, 'corpus.json')))['settings'],
        'loss_curve': hist,
        'weights': 'EMA',
    }
    with open(os.path.join(out_dir, 'training.json'), 'w') as f:
        json.dump(training, f, indent=1)
    with open(os.path.join(out_dir, 'ATTRIBUTION.md'), 'w') as f:
        f.write(ATTRIBUTION.format(g=pkg_version('emoji-datasource-google'), t=pkg_version('emoji-datasource-twitter'),
                                   e=pkg_version('emojibase-data')))
    for name in sorted(os.listdir(out_dir)):
        print(f'{name}: {os.path.getsize(os.path.join(out_dir, name)) / 1e6:.2f} MB')
    if not any(r.get('args', {}).get('identifier_dropin') for r in ck.get('runs', [])):
        print('note: no run of this checkpoint had --identifier-dropin, so <v1>..<v8> are not neutral: run '
              'neutral_identifiers.py next (the shipped model has had that since session 16)')
    if not args.no_grid:
        import sample

        sample.main([])


if __name__ == '__main__':
    use_openblas()
    main()
