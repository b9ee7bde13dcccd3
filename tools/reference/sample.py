"""DDIM and Euler-ancestral samplers with classifier-free guidance for the exported default model, and the
prompt × seed grid.

Usage: python3 tools/reference/sample.py [--model public/models/emoji-tiny] [--out docs/default-model-grid-torch.png]
           [--sampler ddim | euler-a] [--steps 50] [--guidance G] [--recompute-eps true|false] [--seeds 0,1]
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MODEL_DIR, ROOT, alphas_cumprod, read_sampling, use_openblas  # noqa: E402
from onnx_weights import load_text_encoder  # noqa: E402
from st_io import load_file  # noqa: E402
from text import Tokenizer  # noqa: E402
from unet import UNet2DConditionModel  # noqa: E402

GRID_PROMPTS = [
    'grinning face', 'red heart', 'dog face', 'cat face', 'pile of poo', 'fire', 'thumbs up', 'rocket',
    'pizza', 'sun', 'snowman', 'ghost', 'alien', 'rainbow', 'banana', 'smiling face with sunglasses',
]


def spaced_timesteps(num_steps, cfg, spacing):
    """diffusers' set_timesteps spacing (float, noisiest first): leading, linspace or trailing."""
    n, T = num_steps, cfg['num_train_timesteps']
    if spacing == 'leading':
        return (np.arange(0, n) * (T // n)).round()[::-1].astype(np.float64) + cfg['steps_offset']
    if spacing == 'trailing':
        return np.round(T - np.arange(0, n) * (T / n)) - 1
    return np.linspace(0, T - 1, n)[::-1]


def ddim_timesteps(num_steps, cfg):
    """diffusers DDIMScheduler.set_timesteps: the config's timestep_spacing, 'leading' when it has none."""
    return spaced_timesteps(num_steps, cfg, cfg.get('timestep_spacing', 'leading')).round().astype(np.int64)


@torch.no_grad()
def ddim_sample(unet, cond, uncond, noise, sched_cfg, steps=50, guidance=4.0, inspect=None, guidance_below=None,
                recompute_eps=False):
    """Deterministic DDIM (eta 0) exactly as diffusers' DDIMScheduler.step (x0 clipped, epsilon kept), or with
    recompute_eps epsilon taken from the clipped x0 where the clip acted (the studio's SamplerOptions.recomputeEpsilon).

    inspect(i, x), if given, sees x after each step i = 1..steps. guidance_below, if given, applies the guidance
    only at timesteps t <= guidance_below (a guidance interval); above it the conditional prediction alone."""
    acp = alphas_cumprod(sched_cfg).float().to(noise.device)
    final = torch.tensor(1.0, device=noise.device) if sched_cfg['set_alpha_to_one'] else acp[0]
    ratio = sched_cfg['num_train_timesteps'] // steps
    x = noise
    ctx = torch.cat([uncond, cond])
    for i, t in enumerate(ddim_timesteps(steps, sched_cfg)):
        out = unet(torch.cat([x, x]), torch.full((2 * x.shape[0],), float(t), device=x.device), ctx)
        eu, ec = out.chunk(2)
        g = guidance if guidance_below is None or t <= guidance_below else 1.0
        eps = eu + g * (ec - eu)
        a = acp[t]
        prev = t - ratio
        a_prev = acp[prev] if prev >= 0 else final
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        if sched_cfg['clip_sample']:
            x0 = x0.clamp(-sched_cfg['clip_sample_range'], sched_cfg['clip_sample_range'])
            if recompute_eps:  # on the clipped pixels only, as the studio (elsewhere the same value, up to rounding)
                eps = torch.where(x0.abs() >= sched_cfg['clip_sample_range'], (x - a.sqrt() * x0) / (1 - a).sqrt(), eps)
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        if inspect:
            inspect(i + 1, x)
    return x


def euler_sigmas(num_steps, cfg):
    """The studio's EulerAncestralSampler (diffusers' EulerAncestralDiscreteScheduler, the config's timestep_spacing,
    "linspace" when it has none): the timesteps (fractional), and sigma at each with a final 0; sigma interpolated
    linearly in sigma, not alpha_bar."""
    acp = alphas_cumprod(cfg)
    all_sigmas = ((1 - acp) / acp).sqrt()
    last = cfg['num_train_timesteps'] - 1
    spacing = cfg.get('timestep_spacing', 'linspace')
    if spacing == 'linspace':
        ts = [float(last)] if num_steps == 1 else [last * (num_steps - 1 - i) / (num_steps - 1)
                                                   for i in range(num_steps)]
    else:
        ts = [float(t) for t in spaced_timesteps(num_steps, cfg, spacing)]
    sigmas = []
    for t in ts:
        lo = int(np.floor(t))
        hi = min(last, lo + 1)
        w = t - lo
        sigmas.append(float(all_sigmas[lo] * (1 - w) + all_sigmas[hi] * w))
    return ts, sigmas + [0.0]


def seed_streams(seeds, shape):
    """One torch generator per seed, as the studio's one Rng per image: the initial noise is each generator's first
    draw (so DDIM's noise is torch.randn(shape, generator=manual_seed(seed))), and step_noise() draws the next
    [S, *shape] for Euler's ancestral steps from the same generators."""
    gens = [torch.Generator().manual_seed(s) for s in seeds]

    def step_noise():
        return torch.stack([torch.randn(shape, generator=g) for g in gens])

    return step_noise(), step_noise


@torch.no_grad()
def euler_a_sample(unet, cond, uncond, noise, sched_cfg, step_noise, steps=25, guidance=4.0, inspect=None,
                   guidance_below=None, recompute_eps=False):
    """Euler ancestral exactly as the studio's EulerAncestralSampler: noise is unit noise (scaled here by
    init_noise_sigma), step_noise() gives the unit noise of each ancestral step (not called when sigma_up is 0, the
    last step). With recompute_eps and clip_sample, x0 is clipped and the derivative taken from it (diffusers never
    clips here). inspect and guidance_below as ddim_sample."""
    ts, sigmas = euler_sigmas(steps, sched_cfg)
    x = noise * (sigmas[0] ** 2 + 1) ** 0.5
    ctx = torch.cat([uncond, cond])
    clip = sched_cfg['clip_sample'] and recompute_eps
    for i, t in enumerate(ts):
        sigma, sigma_to = sigmas[i], sigmas[i + 1]
        inp = x / (sigma ** 2 + 1) ** 0.5
        out = unet(torch.cat([inp, inp]), torch.full((2 * x.shape[0],), t, device=x.device), ctx)
        eu, ec = out.chunk(2)
        g = guidance if guidance_below is None or t <= guidance_below else 1.0
        m = eu + g * (ec - eu)
        if sched_cfg['prediction_type'] == 'epsilon':
            x0 = x - sigma * m
        else:  # v-prediction through c_skip / c_out
            x0 = m * (-sigma / (sigma ** 2 + 1) ** 0.5) + x / (sigma ** 2 + 1)
        if clip:
            x0 = x0.clamp(-sched_cfg['clip_sample_range'], sched_cfg['clip_sample_range'])
        sigma_up = (sigma_to ** 2 * (sigma ** 2 - sigma_to ** 2) / sigma ** 2) ** 0.5
        sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
        x = x + (x - x0) / sigma * (sigma_down - sigma)
        if sigma_up > 0:
            x = x + step_noise().to(x.device) * sigma_up
        if inspect:
            inspect(i + 1, x)
    return x


def run_sampler(kind, unet, cond, uncond, noise, sched_cfg, step_noise, steps, guidance, guidance_below=None,
                recompute_eps=False):
    """ddim_sample or euler_a_sample by the studio's sampler name."""
    if kind == 'ddim':
        return ddim_sample(unet, cond, uncond, noise, sched_cfg, steps, guidance, guidance_below=guidance_below,
                           recompute_eps=recompute_eps)
    if kind == 'euler-a':
        return euler_a_sample(unet, cond, uncond, noise, sched_cfg, step_noise, steps, guidance,
                              guidance_below=guidance_below, recompute_eps=recompute_eps)
    raise ValueError(f'unknown sampler {kind!r} (ddim or euler-a)')


def describe_clip(kind, sched_cfg, recompute_eps):
    if not sched_cfg['clip_sample'] or (kind == 'euler-a' and not recompute_eps):
        return 'x0 not clipped'
    if kind == 'euler-a':
        return 'x0 clipped, the derivative from it'
    return 'x0 clipped, epsilon ' + ('from the clipped x0' if recompute_eps else 'kept')


def load_model(model_dir):
    with open(os.path.join(model_dir, 'config.json')) as f:
        unet = UNet2DConditionModel(json.load(f))
    sd = {k: v.float() for k, v in load_file(os.path.join(model_dir, 'unet.safetensors')).items()}
    unet.load_state_dict(sd)
    with open(os.path.join(model_dir, 'scheduler_config.json')) as f:
        sched = json.load(f)
    tok = Tokenizer.from_json(os.path.join(model_dir, 'tokenizer.json'))
    # ONNX cannot run here (no onnxruntime for Python): the torch encoder gets the ONNX file's own weights.
    text = load_text_encoder(os.path.join(model_dir, 'text_encoder.onnx'))
    return unet.eval(), text, tok, sched


def to_image(x):
    return Image.fromarray(((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())


def render_grid(unet, encode, sched, prompts, seeds, out, steps=50, guidance=4.0, scale=3, guidance_below=None,
                recompute_eps=False, sampler='ddim'):
    """encode(list[str]) -> [B, L, D]. Tiles: prompts in rows of 4, each prompt's seeds side by side."""
    size = unet.config['sample_size']
    tiles = []
    for p in prompts:
        noise, step_noise = seed_streams(seeds, (3, size, size))  # every prompt from the same noise
        cond = encode([p] * len(seeds))
        uncond = encode([''] * len(seeds))
        tiles.append(run_sampler(sampler, unet, cond, uncond, noise, sched, step_noise, steps, guidance,
                                 guidance_below=guidance_below, recompute_eps=recompute_eps))
    tw, cap, cols = size * scale, 14, 4
    rows = (len(prompts) + cols - 1) // cols
    cell_w = tw * len(seeds) + 8
    grid = Image.new('RGB', (cols * cell_w, rows * (tw + cap + 6)), 'white')
    draw = ImageDraw.Draw(grid)
    for i, (p, imgs) in enumerate(zip(prompts, tiles)):
        x0, y0 = (i % cols) * cell_w, (i // cols) * (tw + cap + 6)
        for j, im in enumerate(imgs):
            grid.paste(to_image(im).resize((tw, tw), Image.NEAREST), (x0 + j * tw, y0))
        draw.text((x0 + 2, y0 + tw + 1), p[:34], fill='black')
    os.makedirs(os.path.dirname(out), exist_ok=True)
    grid.save(out)
    return grid


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default=MODEL_DIR)
    ap.add_argument('--out', default=os.path.join(ROOT, 'docs', 'default-model-grid-torch.png'))
    ap.add_argument('--sampler', default='ddim', choices=['ddim', 'euler-a'])
    ap.add_argument('--steps', type=int, default=None, help="default: the model folder's sampling.json, else 25")
    ap.add_argument('--guidance', type=float, default=None,
                    help="default: the model folder's sampling.json, else 5 (as the studio)")
    ap.add_argument('--guidance-below', type=int, default=None,
                    help='apply the guidance only at timesteps <= this (above it: the conditional prediction alone)')
    ap.add_argument('--recompute-eps', default=None, choices=['true', 'false'],
                    help="DDIM's epsilon from the clipped x0, Euler's x0 clipped (default: the model's sampling.json, "
                         "else false)")
    ap.add_argument('--seeds', default='1,2', help='default: the seeds of the committed grid')
    ap.add_argument('--prompts', default=None, help='comma-separated; default: the 16 grid prompts')
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    unet, text, tok, sched = load_model(args.model)
    sampling = read_sampling(args.model)
    if args.guidance is None:
        args.guidance = sampling['guidance']
    if args.steps is None:
        args.steps = sampling['steps']
    recompute = sampling['recomputeEpsilon'] if args.recompute_eps is None else args.recompute_eps == 'true'
    print(f'{args.sampler}, guidance {args.guidance}, {args.steps} steps, '
          f'{describe_clip(args.sampler, sched, recompute)}')
    prompts = args.prompts.split(',') if args.prompts else GRID_PROMPTS
    seeds = [int(s) for s in args.seeds.split(',')]
    render_grid(unet, lambda ps: text(tok(ps)), sched, prompts, seeds, args.out, args.steps, args.guidance,
                guidance_below=args.guidance_below, recompute_eps=recompute, sampler=args.sampler)
    print('wrote', args.out)


if __name__ == '__main__':
    use_openblas()
    main()
