"""Shared paths, the tiny default model's config, the DDPM schedule and the OpenBLAS re-exec of the reference tools."""

import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
DATA = os.path.join(HERE, '.data')
MODEL_DIR = os.path.join(ROOT, 'public', 'models', 'emoji-tiny')
# Debian's torch links the reference BLAS (~1.7 GFLOP/s for Linear); the cached libopenblas0-pthread .deb,
# unpacked here by setup (see README.md), is a drop-in libblas.so.3 that is ~4x faster. Only our process sees it.
OPENBLAS = os.path.join(DATA, 'openblas', 'usr', 'lib', 'x86_64-linux-gnu', 'openblas-pthread')

TINY_UNET_CONFIG = {
    '_class_name': 'UNet2DConditionModel',
    '_diffusers_version': '0.27.0',
    'sample_size': 32,
    'in_channels': 3,
    'out_channels': 3,
    'center_input_sample': False,
    'flip_sin_to_cos': True,
    'freq_shift': 0,
    'down_block_types': ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
    'mid_block_type': 'UNetMidBlock2DCrossAttn',
    'up_block_types': ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
    'only_cross_attention': False,
    'block_out_channels': [64, 128, 128],
    'layers_per_block': 1,
    'downsample_padding': 1,
    'mid_block_scale_factor': 1,
    'act_fn': 'silu',
    'norm_num_groups': 32,
    'norm_eps': 1e-5,
    'cross_attention_dim': 128,
    'attention_head_dim': 2,  # SD 1.5 quirk: this is the number of heads (2 heads of 64 channels)
    'num_attention_heads': None,
    'use_linear_projection': False,
}

SCHEDULER_CONFIG = {
    '_class_name': 'DDPMScheduler',
    '_diffusers_version': '0.27.0',
    'num_train_timesteps': 1000,
    'beta_start': 0.0001,
    'beta_end': 0.02,
    'beta_schedule': 'linear',
    'prediction_type': 'epsilon',
    'variance_type': 'fixed_small',
    'clip_sample': True,
    'clip_sample_range': 1.0,
    'set_alpha_to_one': True,
    'steps_offset': 0,
}
# No 'timestep_spacing' key: without it each sampler takes its diffusers default (DDIM "leading", Euler ancestral
# "linspace"), which is how the studio and sample.py sample. With the key, diffusers' from_config applies it to
# every scheduler built from this config, so writing "leading" would move Euler's steps.


def alphas_cumprod(cfg=SCHEDULER_CONFIG):
    """ᾱ_t in float64 for 'linear' betas, or 'scaled_linear' (diffusers: a linspace of √β, squared; SD 1.5)."""
    n = cfg['num_train_timesteps']
    if cfg['beta_schedule'] == 'linear':
        betas = torch.linspace(cfg['beta_start'], cfg['beta_end'], n, dtype=torch.float64)
    elif cfg['beta_schedule'] == 'scaled_linear':
        betas = torch.linspace(cfg['beta_start'] ** 0.5, cfg['beta_end'] ** 0.5, n, dtype=torch.float64) ** 2
    else:
        raise ValueError(f"beta_schedule {cfg['beta_schedule']!r} is not supported (linear, scaled_linear)")
    return torch.cumprod(1.0 - betas, dim=0)


def load_corpus():
    """corpus.json's items and .data/corpus.npz's images as float [N, 3, 32, 32] in [-1, 1] (prepare_corpus.py)."""
    import json

    import numpy as np

    npz = os.path.join(DATA, 'corpus.npz')
    if not os.path.exists(npz):
        sys.exit(f'{npz} is missing (it is not committed): run /usr/bin/python3 tools/reference/prepare_corpus.py')
    with open(os.path.join(HERE, 'corpus.json')) as f:
        items = json.load(f)['items']
    images = torch.from_numpy(np.load(npz)['images']).permute(0, 3, 1, 2)
    return items, images.float().div(127.5).sub(1.0).contiguous()


# The studio's BUILT_IN_SAMPLING (src/models/sampling.ts)
SAMPLING_DEFAULTS = {'guidance': 5.0, 'steps': 25, 'recomputeEpsilon': False}


def read_sampling(model_dir):
    """A model folder's sampling.json (recommended guidance, steps, DDIM's ε after the x0 clip), missing keys from
    SAMPLING_DEFAULTS."""
    import json

    path = os.path.join(model_dir, 'sampling.json')
    if not os.path.exists(path):
        return dict(SAMPLING_DEFAULTS)
    with open(path) as f:
        return {**SAMPLING_DEFAULTS, **json.load(f)}


def use_openblas():
    """Re-exec this script with OpenBLAS as libblas.so.3 when it is unpacked and not yet in use."""
    if os.path.isdir(OPENBLAS) and OPENBLAS not in os.environ.get('LD_LIBRARY_PATH', ''):
        env = dict(os.environ)
        env['LD_LIBRARY_PATH'] = OPENBLAS + (':' + env['LD_LIBRARY_PATH'] if env.get('LD_LIBRARY_PATH') else '')
        env.setdefault('OPENBLAS_NUM_THREADS', '2')
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
