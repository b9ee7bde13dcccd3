"""DreamBooth-style LoRA (optionally LoCon; fixed rank or LoRA²) on an exported model, in PyTorch: a reference for
what the studio's personalization needs on a given base model, in minutes instead of lavapipe hours.

    /usr/bin/python3 tools/reference/dreambooth_lora.py --photos DIR --prompt "<v1> robot" \\
        --targets attn --conv --rank 16 --batch 4 --steps 600 --out docs/x.png

Targets: `attn` (to_q/to_k/to_v/to_out.0, the studio's default), `all` (every Linear in the blocks), plus
`--conv` for the 3×3 convolutions of every ResNet block (the studio's `attention+conv`). `--lora2` trains LoRA²
adapters instead (DESIGN.md §5: importance f(i) = e^{-λi}(1 - e^{-λ}), λ = softplus(ρ), rank D at quantile mass k,
Gaussian rate and weight priors scaled by 1/N with N = photos·C·H·W as in the studio's trainer; A's weight prior
as decoupled decay, `--weight-prior-a`), with capacity
fixed at `--max-rank` (no chunked growth: positions ≥ D are masked, which is what the function sees).

Prior preservation as the studio's trainer (`--class-prompt robot --class-images 8 --prior-weight 1`): the base
model draws the class images first (the sampling below, seeds 1000+i); every step adds λ × the loss of a class batch
of the same size under the class prompt.

The grid has five rows over four seeds: the photos, the base model and the LoRA with the prompt, the base model and
the LoRA with `--other` (how far the LoRA leaks into other prompts). DDIM 25 steps with the model folder's
sampling.json (guidance, ε from the clipped x₀; `--guidance`, `--recompute-eps` override it). Before 2026-11-30
this script sampled at guidance 7.5 with the clipped x₀'s ε kept, where the default model itself draws noise for
"cat face", and it fed 64-px photos to the 32-px model unscaled (BENCHMARKS.md, "Personalization in the PyTorch
reference at the model's resolution"). It prints scores in recognize.py's measure
(the rank of an emoji among the corpus's 1,905 by blurred pixel distance, 1 = nearest, median over the seeds):
the subject's held-out design (`--subject`, default: the photos folder's `subject-CODE` name) for the prompt rows,
the other prompt's emoji for its rows, and how far the LoRA moved the other prompt's samples (mean |Δ| in 0..255).

`--load-kohya lora.safetensors` renders and scores a kohya LoRA instead of training one: the file `npm run train` or
the studio's export writes (any mix of Linear and Conv2d layers and ranks, by diffusers key path), so an adapter the
WGSL trainer made is judged with the same noise, seeds and scores as the runs trained here.

Experiments kept as options (BENCHMARKS.md, "The weight prior and Adam"): `--precondition` (B's step of position i
divided by f(i)) and `--soft-mask` (the last live position weighted by the fractional rank) changed neither the
ranks nor the samples on the robot subject; `--weight-sigma 0` drops the weight prior.
"""
import argparse
import glob
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MODEL_DIR, ROOT, alphas_cumprod, load_corpus, read_sampling, use_openblas  # noqa: E402
from prepare_corpus import to_rgb32  # noqa: E402
from recognize import Scorer  # noqa: E402
from sample import ddim_sample, load_model, seed_streams, to_image  # noqa: E402
from st_io import load_file  # noqa: E402

CLASS_SEED = 1000


def subject_designs(code):
    """The held-out designs of CODE (holdout.json), 32×32 on white in [-1, 1], as the corpus's."""
    import json

    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'holdout.json')) as f:
        items = [it for it in json.load(f)['items'] if it['code'] == code.upper()]
    if not items:
        sys.exit(f'--subject {code}: not a held-out design (holdout.json)')
    arr = np.stack([to_rgb32(os.path.join(ROOT, it['image'])) for it in items])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1


class LoRA(nn.Module):
    """y = base(x) + s·B·A·x, A ~ N(0, 1/in), B = 0 (the model starts unchanged)."""

    def __init__(self, base, r, s):
        super().__init__()
        self.base, self.s = base, s
        self.A = nn.Parameter(torch.randn(r, base.in_features) / math.sqrt(base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))

    def forward(self, x):
        return self.base(x) + self.s * (x @ self.A.t()) @ self.B.t()


class LoCon(nn.Module):
    """y = base(x) + s·up(down(x)): down a kh×kw conv to r channels (the base's stride/padding), up 1×1."""

    def __init__(self, base, r, s):
        super().__init__()
        self.base, self.s = base, s
        k = base.kernel_size
        fan = base.in_channels * k[0] * k[1]
        self.A = nn.Parameter(torch.randn(r, base.in_channels, *k) / math.sqrt(fan))
        self.B = nn.Parameter(torch.zeros(base.out_channels, r, 1, 1))

    def forward(self, x):
        d = F.conv2d(x, self.A, None, self.base.stride, self.base.padding)
        return self.base(x) + self.s * F.conv2d(d, self.B)


def effective_rank(lam, k, max_rank):
    return max(1, min(max_rank, math.ceil(math.log(1 / (1 - k)) / lam)))


class LoRA2(nn.Module):
    """y = base(x) + s·up_B[:, :D](f[:D] ⊙ down_A[:D](x)), on a Linear or (LoCon) a Conv2d."""

    def __init__(self, base, a):
        super().__init__()
        self.base, self.s, self.k, self.max_rank = base, a.scale, a.quantile, a.max_rank
        self.soft = a.soft_mask
        conv = isinstance(base, nn.Conv2d)
        fan = base.in_channels * base.kernel_size[0] * base.kernel_size[1] if conv else base.in_features
        shape = (a.max_rank, base.in_channels, *base.kernel_size) if conv else (a.max_rank, base.in_features)
        self.A = nn.Parameter(torch.randn(shape) / math.sqrt(fan))
        out = base.out_channels if conv else base.out_features
        self.B = nn.Parameter(torch.zeros((out, a.max_rank, 1, 1) if conv else (out, a.max_rank)))
        lam0 = math.log(1 / (1 - a.quantile)) / a.initial_rank
        self.rho = nn.Parameter(torch.tensor(math.log(math.expm1(lam0))))

    def lam(self):
        return F.softplus(self.rho)

    def rank(self):
        return effective_rank(float(self.lam()), self.k, self.max_rank)

    def importance(self):
        """f[:D]; with --soft-mask the last live position is weighted by the fractional part of the continuous
        rank ln(1/(1-k))/λ, so the live mass is continuous in λ and λ sees whether position D helps."""
        d, lam = self.rank(), self.lam()
        f = torch.exp(-lam * torch.arange(d, dtype=torch.float32)) * (1 - torch.exp(-lam))
        if self.soft and 1 < d < self.max_rank:
            frac = (math.log(1 / (1 - self.k)) / lam - (d - 1)).clamp(0, 1)
            f = torch.cat([f[:-1], f[-1:] * frac.view(1)])
        return f

    def forward(self, x):
        d, f = self.rank(), self.importance()
        if isinstance(self.base, nn.Conv2d):
            h = F.conv2d(x, self.A[:d], None, self.base.stride, self.base.padding) * f.view(1, -1, 1, 1)
            return self.base(x) + self.s * F.conv2d(h, self.B[:, :d])
        return self.base(x) + self.s * F.linear(f * F.linear(x, self.A[:d]), self.B[:, :d])

    def prior(self, mu, sigma, weight_sigma, with_a=True):
        d = self.rank()
        w = (self.B[:, :d] ** 2).sum() + ((self.A[:d] ** 2).sum() if with_a else 0)
        rate = (self.lam() - mu) ** 2 / (2 * sigma**2)
        return rate + w / (2 * weight_sigma**2) if weight_sigma > 0 else rate


def load_kohya(unet, path):
    """Wraps the UNet's layers named in a kohya LoRA file (`lora_unet_<path with . as _>.lora_down/.lora_up/.alpha`,
    the studio's export) as fixed LoRA / LoCon adapters with B = up · alpha/rank, so `s` switches them on and off.
    Exits naming the first key that matches no layer or a shape that does not fit."""
    tensors = load_file(path)
    by_name = {}
    for name, mod in unet.named_modules():
        for child_name, child in mod.named_children():
            if isinstance(child, (nn.Linear, nn.Conv2d)):
                full = f'{name}.{child_name}' if name else child_name
                by_name['lora_unet_' + full.replace('.', '_')] = (mod, child_name, child)
    adapters = []
    for key in sorted(k for k in tensors if k.endswith('.lora_down.weight')):
        stem = key[: -len('.lora_down.weight')]
        if stem not in by_name:
            sys.exit(f'{path}: {stem} names no Linear or Conv2d of this UNet')
        if f'{stem}.lora_up.weight' not in tensors:
            sys.exit(f'{path}: {stem} has lora_down without lora_up')
        mod, child_name, base = by_name[stem]
        down, up = tensors[key].float(), tensors[f'{stem}.lora_up.weight'].float()
        r = down.shape[0]
        alpha = float(tensors[f'{stem}.alpha']) if f'{stem}.alpha' in tensors else r
        ad = (LoCon if isinstance(base, nn.Conv2d) else LoRA)(base, r, 1.0)
        if ad.A.shape != down.shape or ad.B.shape != up.shape:
            sys.exit(f'{path}: {stem} has down {tuple(down.shape)} / up {tuple(up.shape)}; the layer needs '
                     f'{tuple(ad.A.shape)} / {tuple(ad.B.shape)}')
        with torch.no_grad():
            ad.A.copy_(down)
            ad.B.copy_(up * (alpha / r))
        setattr(mod, child_name, ad)
        adapters.append(ad)
    if not adapters:
        sys.exit(f'{path}: no lora_unet_*.lora_down.weight tensors (not a kohya LoRA of the UNet)')
    return adapters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--photos', required=True,
                    help='folder of the subject photos (PNG; centre-cropped and box-filtered to the model resolution)')
    ap.add_argument('--prompt', default='<v1> robot')
    ap.add_argument('--other', default='cat face', help='a second prompt rendered with the LoRA')
    ap.add_argument('--model', default=MODEL_DIR)
    ap.add_argument('--steps', type=int, default=600)
    ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--rank', type=int, default=16)
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--targets', choices=['attn', 'all'], default='attn')
    ap.add_argument('--conv', action='store_true', help='also the ResNet 3×3 convolutions (LoCon)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', required=True)
    ap.add_argument('--guidance', type=float, default=None, help="default: the model folder's sampling.json")
    ap.add_argument('--recompute-eps', default=None, choices=['true', 'false'],
                    help="DDIM's ε from the clipped x0 (default: the model folder's sampling.json)")
    ap.add_argument('--class-prompt', default='', help='prior preservation: the class prompt (e.g. robot)')
    ap.add_argument('--class-images', type=int, default=8)
    ap.add_argument('--prior-weight', type=float, default=1.0, help='λ: weight of the class batch loss')
    ap.add_argument('--subject', default=None,
                    help='held-out emoji code of the photos, to score likeness (default: from a subject-CODE folder)')
    ap.add_argument('--save-adapters', default='', help='torch.save the trained adapters here (.pt)')
    ap.add_argument('--load-adapters', default='',
                    help='a --save-adapters file: render and score it (other sampling settings) instead of training; '
                         'give the adapter options it was trained with (--conv, --lora2, ...)')
    ap.add_argument('--load-kohya', default='',
                    help='a kohya LoRA file (e.g. lora.safetensors from `npm run train` or the studio\'s export): '
                         'render and score it instead of training; its layers choose the targets')
    ap.add_argument('--lora2', action='store_true', help='LoRA² adapters (adaptive rank) instead of fixed rank')
    ap.add_argument('--scale', type=float, default=1.0, help='LoRA²: output scale s')
    ap.add_argument('--initial-rank', type=int, default=4)
    ap.add_argument('--max-rank', type=int, default=64)
    ap.add_argument('--quantile', type=float, default=0.9)
    ap.add_argument('--prior-rank', type=float, default=2)
    ap.add_argument('--rate-sigma', type=float, default=0.3)
    ap.add_argument('--rate-lr', type=float, default=1e-2)
    ap.add_argument('--weight-sigma', type=float, default=1.0, help='LoRA²: σ_θ of the weight prior (0: no weight prior)')
    ap.add_argument('--weight-prior-a', choices=['adam', 'decay'], default='decay',
                    help="LoRA²: A's weight prior as decoupled decay at lr (the studio's default, weightPriorDecoupledA) "
                         "or in the gradient Adam normalises (adam: the studio before 2026-11-29)")
    ap.add_argument('--soft-mask', action='store_true', help='LoRA²: fractional weight on the last live position')
    ap.add_argument('--precondition', action='store_true',
                    help='LoRA²: divide the AdamW step of up-column i by f(i), so every live position moves the '
                         'function as fast as a fixed-rank LoRA column (f is treated as a constant preconditioner)')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    unet, text, tok, sched = load_model(a.model)
    sampling = read_sampling(a.model)
    guidance = sampling['guidance'] if a.guidance is None else a.guidance
    recompute = sampling['recomputeEpsilon'] if a.recompute_eps is None else a.recompute_eps == 'true'
    sample_steps = int(sampling['steps'])
    subject = a.subject
    if subject is None and os.path.basename(os.path.normpath(a.photos)).startswith('subject-'):
        subject = os.path.basename(os.path.normpath(a.photos))[len('subject-'):]

    def render(prompts, seeds):  # DDIM as the studio's Generate tab; each seed its own noise
        noise, _ = seed_streams(seeds, (3, unet.config['sample_size'], unet.config['sample_size']))
        with torch.no_grad():
            return ddim_sample(unet, text(tok(prompts)), text(tok([''] * len(prompts))), noise, sched, sample_steps,
                               guidance, recompute_eps=recompute).clamp(-1, 1)

    print(f'sampling: DDIM {sample_steps} steps, guidance {guidance}, '
          f'{"ε from the clipped x0" if recompute else "ε kept"}', flush=True)
    class_imgs = None
    if a.class_prompt:  # prior preservation: the base model's own pictures of the class, before any adapter
        t_cls = time.time()
        class_imgs = render([a.class_prompt] * a.class_images, [CLASS_SEED + i for i in range(a.class_images)])
        print(f'{a.class_images} class images of "{a.class_prompt}" in {time.time() - t_cls:.0f} s', flush=True)
    for p in list(unet.parameters()) + list(text.parameters()):
        p.requires_grad_(False)

    def wanted(name, mod):
        if isinstance(mod, nn.Conv2d):
            return a.conv and mod.kernel_size[0] > 1 and '.resnets.' in name
        if not isinstance(mod, nn.Linear) or not name.startswith(('down_blocks', 'mid_block', 'up_blocks')):
            return False
        return a.targets == 'all' or name.endswith(('to_q', 'to_k', 'to_v', 'to_out.0'))

    adapters = []
    if a.load_kohya:
        adapters = load_kohya(unet, a.load_kohya)
        a.steps, a.lora2 = 0, False
    for name, mod in list(unet.named_modules()) if not a.load_kohya else []:
        for child_name, child in list(mod.named_children()):
            full = f'{name}.{child_name}' if name else child_name
            if wanted(full, child):
                if a.lora2:
                    ad = LoRA2(child, a)
                else:
                    ad = (LoCon if isinstance(child, nn.Conv2d) else LoRA)(child, a.rank, 1.0)
                setattr(mod, child_name, ad)
                adapters.append(ad)
    if a.load_adapters:
        saved = torch.load(a.load_adapters)['adapters']
        if len(saved) != len(adapters):
            sys.exit(f'{a.load_adapters} has {len(saved)} adapters; these options make {len(adapters)}')
        for ad, sd in zip(adapters, saved):
            ad.load_state_dict(sd)
        a.steps = 0
    params = [p for ad in adapters for p in (ad.A, ad.B)]
    n_conv = sum(isinstance(ad.base, nn.Conv2d) for ad in adapters)
    print(f'{len(adapters)} adapters ({n_conv} conv), {sum(p.numel() for p in params)} parameters', flush=True)

    files = sorted(glob.glob(os.path.join(a.photos, '*.png')))
    if not files:
        sys.exit(f'no .png photos in {a.photos}')
    size = unet.config['sample_size']

    def over_white(f):  # transparent parts over white, as the studio's rgbaToModelInput
        im = Image.open(f).convert('RGBA')
        im = Image.alpha_composite(Image.new('RGBA', im.size, 'white'), im).convert('RGB')
        if im.size != (size, size):  # as the studio's cropResize: the centred square, box-filtered to the model's side
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BOX)
        return im

    imgs = torch.stack([torch.from_numpy(np.array(over_white(f))).permute(2, 0, 1).float() / 127.5 - 1
                        for f in files])
    print(f'{len(files)} photos at {size}×{size}', flush=True)
    acp = alphas_cumprod(sched).float()
    with torch.no_grad():
        cond = text(tok([a.prompt]))
        class_cond = text(tok([a.class_prompt])) if class_imgs is not None else None
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0)
    if a.lora2:
        rate_opt = torch.optim.Adam([ad.rho for ad in adapters], lr=a.rate_lr)
        n_data = imgs.numel()  # photos·C·H·W: the loss is a per-element mean (the studio's datasetSize)
        mu = math.log(1 / (1 - a.quantile)) / a.prior_rank
    t0, ema = time.time(), None

    def batch_loss(pool, c):  # ε-MSE of a flipped batch drawn from pool under the encoded prompt c
        x0 = pool[torch.randint(0, len(pool), (a.batch,))]
        x0 = torch.where(torch.rand(a.batch, 1, 1, 1) < 0.5, x0, x0.flip(3))
        t = torch.randint(0, 1000, (a.batch,))
        noise = torch.randn_like(x0)
        ab = acp[t].view(-1, 1, 1, 1)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        return ((unet(xt, t.float(), c.expand(a.batch, -1, -1)) - noise) ** 2).mean()

    class_ema = None
    for step in range(1, a.steps + 1):
        loss = batch_loss(imgs, cond)
        total = loss
        if class_imgs is not None:
            class_loss = batch_loss(class_imgs, class_cond)
            total = total + a.prior_weight * class_loss
            class_ema = class_loss.item() if class_ema is None else 0.95 * class_ema + 0.05 * class_loss.item()
        if a.lora2:
            with_a = a.weight_prior_a == 'adam'
            total = total + sum(ad.prior(mu, a.rate_sigma, a.weight_sigma, with_a) for ad in adapters) / n_data
            rate_opt.zero_grad()
        opt.zero_grad()
        total.backward()
        if a.lora2 and a.precondition:
            before = [ad.B.detach().clone() for ad in adapters]
        opt.step()
        if a.lora2 and a.weight_prior_a == 'decay' and a.weight_sigma > 0:
            with torch.no_grad():
                for ad in adapters:
                    ad.A.mul_(1 - a.lr / (n_data * a.weight_sigma**2))
        if a.lora2 and a.precondition:
            with torch.no_grad():
                for ad, old in zip(adapters, before):
                    d = ad.rank()
                    f = ad.importance().clamp_min(1e-3)
                    shape = (1, d, 1, 1) if ad.B.dim() == 4 else (1, d)
                    ad.B[:, :d] = old[:, :d] + (ad.B[:, :d] - old[:, :d]) / f.view(shape)
        if a.lora2:
            rate_opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 50 == 0:
            ranks = ''
            if a.lora2:
                conv = sorted(ad.rank() for ad in adapters if isinstance(ad.base, nn.Conv2d))
                attn = sorted(ad.rank() for ad in adapters if not isinstance(ad.base, nn.Conv2d))
                ranks = f' ranks conv {conv} attn {attn}'
            cls = '' if class_ema is None else f' class {class_ema:.4f}'
            print(f'step {step} loss (EMA) {ema:.4f}{cls} {time.time() - t0:.0f}s{ranks}', flush=True)

    def live(ad):  # parameters the exported adapter holds: D (LoRA²'s rank, else r) rows of A and columns of B
        d = ad.rank() if a.lora2 else ad.A.shape[0]
        return d * (ad.A[0].numel() + ad.B.shape[0])
    n_live = sum(live(ad) for ad in adapters)
    print(f'adapter: {n_live} parameters ({4 * n_live} bytes in f32)', flush=True)
    if a.save_adapters:
        torch.save({'args': vars(a), 'adapters': [ad.state_dict() for ad in adapters]}, a.save_adapters)
    seeds = [1, 2, 3, 4]
    with_lora = render([a.prompt] * 4, seeds)
    other = render([a.other] * 4, seeds)
    for ad in adapters:
        ad.s = 0.0
    base = render([a.prompt] * 4, seeds)
    base_other = render([a.other] * 4, seeds)
    cell = 96
    rows = [imgs[:4], base, with_lora, base_other, other]
    grid = Image.new('RGB', (4 * cell, len(rows) * cell), 'white')
    for r, row in enumerate(rows):
        for j in range(min(4, len(row))):
            grid.paste(to_image(row[j]).resize((cell, cell), Image.NEAREST), (j * cell, r * cell))
    grid.save(a.out)
    print(f'wrote {a.out}: rows photos / base "{a.prompt}" / LoRA "{a.prompt}" / base "{a.other}" / LoRA "{a.other}"')

    scorer = Scorer(*load_corpus())
    def med(ranks):
        return f'{float(np.median(ranks)):g} {ranks}'
    if subject:
        designs = subject_designs(subject)
        print(f'subject {subject.upper()} rank among {scorer.n_codes} emoji + it (1 = nearest), "{a.prompt}": '
              f'base {med(scorer.subject_ranks(base, designs))}, LoRA {med(scorer.subject_ranks(with_lora, designs))}')
    ranks_base, ranks_lora = scorer.label_ranks(base_other, a.other), scorer.label_ranks(other, a.other)
    if ranks_base is not None:
        print(f'"{a.other}" emoji rank: base {med(ranks_base)}, LoRA {med(ranks_lora)}')
    moved = ((other - base_other).abs().mean() * 127.5).item()
    print(f'"{a.other}": mean |LoRA - base| {moved:.1f} / 255')

if __name__ == '__main__':
    use_openblas()
    main()
