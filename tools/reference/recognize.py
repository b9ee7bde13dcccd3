"""How recognizable are the default model's samples? A nearest-neighbour score against the training emoji.

Each prompt is an emoji's label; each sample (DDIM or Euler ancestral, classifier-free guidance) is compared with
every design in the corpus (both vendors, 32x32, L2 over pixels after a 2x2 blur, which forgives one-pixel
shifts). The sample's rank is where the prompt's own emoji falls among all emoji (the nearer of its two designs),
1 = nearest. A model that ignored the prompt would rank the right emoji about halfway (median ~ number of emoji / 2);
one that drew it would rank it first. It measures likeness to the training designs, not beauty, and it is the same
for every checkpoint, so two checkpoints can be compared on the same noise.

Usage: python3 tools/reference/recognize.py [--model public/models/emoji-tiny | --ckpt .data/ckpt.pt
           | --ckpt DIR/ema-STEP.safetensors] [--prompts grid | N] [--seeds 1,2,3,4] [--steps 25] [--guidance 4]
           [--guidance-below T] [--recompute-eps] [--sampler ddim | euler-a] [--json out.json]
           [--save-samples s.npz | --load-samples s.npz] [--device cuda] [--prompt-prefix "<v1> "]
--prompts grid: the 16 grid prompts; N: N labels drawn (seed 0) from the six object categories.
"""

import argparse
import json
import os
import random
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MODEL_DIR, SCHEDULER_CONFIG, TINY_UNET_CONFIG, load_corpus, use_openblas  # noqa: E402
from sample import GRID_PROMPTS, describe_clip, load_model, run_sampler, seed_streams  # noqa: E402

OBJECT_CATEGORIES = ['Smileys & Emotion', 'Animals & Nature', 'Food & Drink', 'Travel & Places', 'Objects',
                     'Activities']


def load_ckpt(path):
    """The EMA weights of a training checkpoint, or of a snapshot (ema-STEP.safetensors beside its snapshots.json),
    and its vocabulary, without exporting it."""
    from text import TextEncoder, Tokenizer
    from unet import UNet2DConditionModel

    if path.endswith('.safetensors'):
        from from_snapshot import read_snapshot

        ema_unet, ema_text, meta = read_snapshot(path)
        ck = dict(ema_unet=ema_unet, ema_text=ema_text, vocab=meta['vocab'], step=meta['step'])
    else:
        ck = torch.load(path)
    tok = Tokenizer(ck['vocab'], max_length=16)
    unet = UNet2DConditionModel(TINY_UNET_CONFIG)
    unet.load_state_dict(ck['ema_unet'])
    text = TextEncoder(len(tok.vocab), dim=TINY_UNET_CONFIG['cross_attention_dim'], max_length=tok.max_length)
    text.load_state_dict(ck['ema_text'])
    return unet.eval(), text.eval(), tok, SCHEDULER_CONFIG, ck['step']


def blur(x):
    return F.avg_pool2d(x, 2, stride=1, padding=1, count_include_pad=False)


class Scorer:
    """The measure: where an emoji falls among every corpus emoji by blurred L2 to the nearer of its designs
    (1 = nearest); a held-out subject is ranked against the corpus as if it were one more emoji."""

    def __init__(self, items, images):
        self.ref = blur(images).flatten(1)  # [N, 3*33*33]
        codes = sorted({it['code'] for it in items})
        code_index = {c: i for i, c in enumerate(codes)}
        self.code_of = torch.tensor([code_index[it['code']] for it in items])
        self.n_codes = len(codes)
        self.by_label = {}
        for it in items:
            self.by_label.setdefault(it['label'], code_index[it['code']])

    def _per_code(self, x):  # [S, n_codes]: each sample's distance to the nearer design of each emoji
        d = torch.cdist(blur(x).flatten(1), self.ref)
        return torch.full((len(x), self.n_codes), float('inf')).scatter_reduce(
            1, self.code_of.expand(len(x), -1), d, 'amin')

    def label_ranks(self, x, label):
        """Per sample, the rank of the emoji with this label (None for a label no corpus emoji has)."""
        if label not in self.by_label:
            return None
        k = self.by_label[label]
        return [int((row < row[k]).sum()) + 1 for row in self._per_code(x)]

    def subject_ranks(self, x, designs):
        """Per sample, the rank of a held-out subject given by its designs [V, 3, H, W]."""
        own = torch.cdist(blur(x).flatten(1), blur(designs).flatten(1)).min(dim=1).values
        return [int((row < d).sum()) + 1 for row, d in zip(self._per_code(x), own)]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default=MODEL_DIR)
    ap.add_argument('--ckpt', default='')
    ap.add_argument('--prompts', default='grid')
    ap.add_argument('--seeds', default='1,2,3,4')
    ap.add_argument('--sampler', default='ddim', choices=['ddim', 'euler-a'])
    ap.add_argument('--steps', type=int, default=25)
    ap.add_argument('--guidance', type=float, default=4.0)
    ap.add_argument('--guidance-below', type=int, default=None,
                    help='apply the guidance only at timesteps <= this (sample.py\'s guidance interval)')
    ap.add_argument('--prompt-prefix', default='',
                    help='sample PREFIX + prompt but score against the prompt\'s emoji, e.g. "<v1> ": whether an '
                         'untrained identifier in front (as a personalization prompt has) still draws the prompt')
    ap.add_argument('--json', default='')
    ap.add_argument('--save-samples', default='', help='.npz of the samples, to score again without sampling')
    ap.add_argument('--load-samples', default='', help='score the samples of a --save-samples file')
    ap.add_argument('--recompute-eps', action='store_true',
                    help="DDIM's epsilon from the clipped x0, Euler's x0 clipped (sampling.json's recomputeEpsilon; "
                         "default: off)")
    ap.add_argument('--device', default='cpu', help='where to sample: cpu or cuda (the same noise, drawn on the CPU)')
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    items, images = load_corpus()
    scorer = Scorer(items, images)
    seeds = [int(s) for s in args.seeds.split(',')]

    if args.load_samples:
        saved = np.load(args.load_samples)
        samples, prompts = torch.from_numpy(saved['samples']), saved['prompts'].tolist()
        seeds = saved['seeds'].tolist() if 'seeds' in saved else seeds
        source = f'{saved["source"]} ({args.load_samples})' if 'source' in saved else args.load_samples
    else:
        if args.ckpt:
            unet, text, tok, sched, step = load_ckpt(args.ckpt)
            source = f'{args.ckpt} (EMA, step {step})'
        else:
            unet, text, tok, sched = load_model(args.model)
            source = args.model
        if args.prompts == 'grid':
            prompts = GRID_PROMPTS
        else:
            pool = sorted({it['label'] for it in items if it['category'] in OBJECT_CATEGORIES})
            prompts = random.Random(0).sample(pool, int(args.prompts))
        missing = [p for p in prompts if p not in scorer.by_label]
        if missing:
            sys.exit(f'no corpus emoji is labelled {missing}')
        size = unet.config['sample_size']
        dev = torch.device(args.device)
        unet, text = unet.to(dev), text.to(dev)
        print(f'{args.sampler}, guidance {args.guidance}, {args.steps} steps, '
              f'{describe_clip(args.sampler, sched, args.recompute_eps)}', flush=True)
        with torch.no_grad():
            uncond = text(tok([''] * len(seeds)).to(dev))
            out = []
            for p in prompts:
                noise, step_noise = seed_streams(seeds, (3, size, size))  # every prompt from the same noise
                cond = text(tok([args.prompt_prefix + p] * len(seeds)).to(dev))
                out.append(run_sampler(args.sampler, unet, cond, uncond,
                                       noise.to(dev), sched, step_noise, args.steps, args.guidance,
                                       guidance_below=args.guidance_below, recompute_eps=args.recompute_eps))
            samples = torch.stack(out).clamp(-1, 1).cpu()  # [P, S, 3, H, W]
    if args.save_samples:
        np.savez_compressed(args.save_samples, samples=samples.numpy(), prompts=np.array(prompts), seeds=np.array(seeds),
                            source=np.array(source))

    if args.prompt_prefix:
        source += f', prompts prefixed "{args.prompt_prefix}"'
    ranks, control = {}, []
    for i, (p, x) in enumerate(zip(prompts, samples)):
        ranks[p] = scorer.label_ranks(x, p)
        # Control: the same samples scored against the next prompt's emoji, i.e. a model that ignored the prompt.
        control += scorer.label_ranks(x, prompts[(i + 1) % len(prompts)])
    flat = [r for rs in ranks.values() for r in rs]
    # Every training image is composited on white, so its 1-pixel frame is white; a sample whose frame is not
    # has drawn a background no emoji has.
    def white_frame(x):
        frame = torch.cat([x[..., 0, :], x[..., -1, :], x[..., 1:-1, 0], x[..., 1:-1, -1]], dim=-1)  # [.., 3, F]
        return (frame.min(dim=-2).values > 0.8).float().mean(dim=-1)  # share of frame pixels near white
    summary = {
        'source': source, 'prompts': args.prompts, 'seeds': seeds, 'steps': args.steps, 'guidance': args.guidance,
        'guidance_below': args.guidance_below, 'prompt_prefix': args.prompt_prefix, 'recompute_eps': args.recompute_eps, 'sampler': args.sampler,
        'emoji': scorer.n_codes, 'samples': len(flat), 'median_rank': float(np.median(flat)),
        'top1': sum(r == 1 for r in flat) / len(flat), 'top10': sum(r <= 10 for r in flat) / len(flat),
        'top100': sum(r <= 100 for r in flat) / len(flat),
        'control_median_rank': float(np.median(control)), 'control_top100': sum(r <= 100 for r in control) / len(flat),
        'white_frame_samples': float((white_frame(samples.flatten(0, 1)) > 0.5).float().mean()),
        'white_frame_training': float((white_frame(images) > 0.5).float().mean()), 'ranks': ranks,
    }
    for p, rs in ranks.items():
        print(f'{p:>34}: {rs}')
    print(f'{source}: {len(flat)} samples of {len(prompts)} prompts among {scorer.n_codes} emoji: median rank '
          f'{summary["median_rank"]:.0f}, top-1 {100 * summary["top1"]:.0f}%, top-10 {100 * summary["top10"]:.0f}%, '
          f'top-100 {100 * summary["top100"]:.0f}% (control, the next prompt\'s emoji: median '
          f'{summary["control_median_rank"]:.0f}, top-100 {100 * summary["control_top100"]:.0f}%); white frame in '
          f'{100 * summary["white_frame_samples"]:.0f}% of samples ({100 * summary["white_frame_training"]:.0f}% of '
          f'training images)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=1)


if __name__ == '__main__':
    use_openblas()
    main()
