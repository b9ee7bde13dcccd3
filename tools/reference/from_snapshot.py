"""Turns an EMA snapshot of train_default.py --snapshot-dir (ema-STEP.safetensors + snapshots.json) into a
checkpoint that export_default.py --ckpt and recognize.py --ckpt read: EMA weights widened to f32, no optimizer
state (continue such a run with --from-export after exporting it).

Usage: python3 tools/reference/from_snapshot.py DIR/ema-STEP.safetensors OUT.pt
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_io import load_file  # noqa: E402


def read_snapshot(src):
    """(EMA UNet state dict, EMA text encoder state dict, both f32; the snapshot's entry in snapshots.json)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(src)), 'snapshots.json')) as f:
        meta = json.load(f)[os.path.basename(src)]
    tensors = load_file(src)
    ema_unet = {k[5:]: v.float() for k, v in tensors.items() if k.startswith('unet.')}
    ema_text = {k[5:]: v.float() for k, v in tensors.items() if k.startswith('text.')}
    if len(ema_unet) + len(ema_text) != len(tensors):
        sys.exit(f'{src}: keys other than unet.* and text.*')
    return ema_unet, ema_text, meta


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        sys.exit(__doc__)
    src, out = argv
    ema_unet, ema_text, meta = read_snapshot(src)
    # 'unet' holds the EMA weights too: export_default.py counts the UNet's parameters from it.
    ck = dict(unet=ema_unet, ema_unet=ema_unet, ema_text=ema_text, step=meta['step'], history=meta['history'],
              wall_seconds=meta['wall_seconds'], vocab=meta['vocab'], settings=meta['settings'], runs=meta['runs'],
              snapshot=os.path.basename(src))
    torch.save(ck, out)
    print(f'{out}: step {meta["step"]}, {sum(v.numel() for v in ema_unet.values())} UNet and '
          f'{sum(v.numel() for v in ema_text.values())} text encoder parameters')


if __name__ == '__main__':
    main()
