"""Pretrains the embedded default model (tiny pixel-space UNet + word-level text encoder) on the emoji corpus.

DDPM epsilon objective, AdamW, EMA, 10% empty-prompt dropout for classifier-free guidance, no flips. Runs for a
wall-clock budget, checkpoints atomically every few minutes (stop it any time; --resume continues), then exports
public/models/emoji-tiny/ and renders docs/default-model-grid-torch.png.
Usage: nice -n 10 python3 tools/reference/train_default.py --minutes 70 [--resume]
"""

import argparse
import copy
import json
import math
import os
import random
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DATA, HERE, MODEL_DIR, TINY_UNET_CONFIG, alphas_cumprod, load_corpus, use_openblas  # noqa: E402
from text import TextEncoder, Tokenizer  # noqa: E402
from unet import UNet2DConditionModel, count_params  # noqa: E402

CKPT = os.path.join(DATA, 'ckpt.pt')
LOG = os.path.join(DATA, 'train.log')


def build_tokenizer(items):
    """Vocabulary: every word of every emojibase label/tag and emoji-datasource short name (held-out ones too)."""
    import prepare_corpus

    texts = []
    for e in prepare_corpus.load_emojibase().values():
        texts.append(e['label'])
        texts.extend(e.get('tags', []))
    for it in items:
        texts.extend(it['short_names'])
    with open(os.path.join(HERE, 'holdout.json')) as f:
        for it in json.load(f)['items']:
            texts.extend(it['short_names'])
    return Tokenizer.build(texts, max_length=16)


def sample_prompt(item, rng):
    r = rng.random()
    if r < 0.6 or (not item['tags'] and r < 0.8):
        return item['label']
    if r < 0.8:
        return rng.choice(item['short_names'])
    return ' '.join(rng.sample(item['tags'], min(len(item['tags']), rng.randint(1, 3))))


def log(msg):
    line = f'[{time.strftime("%H:%M:%S")}] {msg}'
    print(line, flush=True)
    with open(LOG, 'a') as f:
        f.write(line + '\n')


def ema_update(ema, model, decay):
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--minutes', type=float, default=70)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--lr', type=float, default=5e-4)
    ap.add_argument('--warmup', type=int, default=100)
    ap.add_argument('--decay-from', type=int, default=0,
                    help='global step where a cosine decay of the lr to --lr-min starts (0: constant lr)')
    ap.add_argument('--decay-steps', type=int, default=2000)
    ap.add_argument('--lr-min', type=float, default=6e-5)
    ap.add_argument('--ema', type=float, default=0.999)
    ap.add_argument('--text-dropout', type=float, default=0.1)
    ap.add_argument('--ckpt-seconds', type=float, default=240)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--threads-file', default='',
                    help='a file holding a thread count, re-read every 20 steps, so a long run can be given more or '
                         'fewer CPU threads without a restart (e.g. fewer while tests run beside it)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--min-snr', type=float, default=0,
                    help='Min-SNR-gamma loss weighting (Hang et al. 2023): weight each item by min(SNR, gamma)/SNR; '
                         '0 = plain epsilon MSE. Down-weights the easy low-noise timesteps.')
    ap.add_argument('--focus-categories', default='',
                    help='comma-separated emojibase categories drawn with probability --focus-frac (the rest of the '
                         'corpus with 1 - focus-frac); empty = uniform over the whole corpus')
    ap.add_argument('--focus-frac', type=float, default=0.0)
    ap.add_argument('--t-focus', default='',
                    help='LO,HI: draw each item\'s timestep from U{LO..HI} with probability --t-focus-frac (else '
                         'U{0..999}). Under the linear betas at 32x32, t > 700 is nearly pure noise (SNR < 0.007) and '
                         'adds almost nothing to the loss, so its share of the batch is spent where the layout forms')
    ap.add_argument('--t-focus-frac', type=float, default=0.0)
    ap.add_argument('--restart-schedule', action='store_true',
                    help='with --resume: count the lr warm-up from the resumed step (a new lr after a decay)')
    ap.add_argument('--probe-every', type=int, default=200,
                    help='every N steps log the text probe: EMA-model loss with matched vs shuffled prompts')
    ap.add_argument('--resume', action='store_true')
    ap.add_argument('--from-export', action='store_true',
                    help='start from the shipped public/models/emoji-tiny weights (EMA UNet widened from f16, the text '
                         'encoder read back from its ONNX) with a fresh optimizer and a new warm-up: for a clone '
                         'without .data/ckpt.pt')
    ap.add_argument('--no-export', action='store_true')
    ap.add_argument('--ckpt', default=CKPT)
    args = ap.parse_args()
    ckpt = args.ckpt
    if ckpt != CKPT:
        global LOG
        LOG = ckpt + '.log'
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    items, images = load_corpus()  # images [N,3,32,32] in [-1,1]
    tok = build_tokenizer(items)

    unet = UNet2DConditionModel(TINY_UNET_CONFIG)
    text = TextEncoder(len(tok.vocab), dim=TINY_UNET_CONFIG['cross_attention_dim'], max_length=tok.max_length)
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), weight_decay=0.01)
    ema_unet, ema_text = copy.deepcopy(unet), copy.deepcopy(text)
    step, history, wall_before, runs = 0, [], 0.0, []
    warm_from = 0  # the lr warm-up counts from here (a fresh optimizer)
    if args.resume and os.path.exists(ckpt):
        ck = torch.load(ckpt)
        unet.load_state_dict(ck['unet'])
        text.load_state_dict(ck['text'])
        ema_unet.load_state_dict(ck['ema_unet'])
        ema_text.load_state_dict(ck['ema_text'])
        opt.load_state_dict(ck['opt'])
        step, history, wall_before = ck['step'], ck['history'], ck['wall_seconds']
        runs = ck.get('runs', [])
        rng.setstate(ck['py_rng'])
        torch.set_rng_state(ck['torch_rng'])
        if args.restart_schedule:
            warm_from = step
        log(f'resumed at step {step}')
    elif args.from_export:
        if os.path.exists(ckpt):
            sys.exit(f'{ckpt} exists: continue it with --resume, or move it away to start from the export')
        from onnx_weights import text_encoder_state_dict
        from st_io import load_file

        with open(os.path.join(MODEL_DIR, 'training.json')) as f:
            exported = json.load(f)
        unet.load_state_dict({k: v.float() for k, v in load_file(os.path.join(MODEL_DIR, 'unet.safetensors')).items()})
        text.load_state_dict(text_encoder_state_dict(os.path.join(MODEL_DIR, 'text_encoder.onnx')))
        ema_unet.load_state_dict(unet.state_dict())
        ema_text.load_state_dict(text.state_dict())
        step, wall_before = exported['steps'], exported['wall_seconds']
        history, runs = exported.get('loss_curve', []), exported.get('runs', [])
        warm_from = step
        log(f'from the export at step {step} (its EMA weights; the optimizer starts fresh, warm-up from here)')
    log(f'unet params {count_params(unet)}, text params {count_params(text)}, vocab {len(tok.vocab)}, '
        f'images {len(items)}, args {vars(args)}')

    runs.append({'from_step': step, 'args': vars(args)})
    acp = alphas_cumprod().float()
    t_lo, t_hi = (int(v) for v in args.t_focus.split(',')) if args.t_focus else (0, 999)
    settings = dict(vars(args), optimizer='AdamW(betas=(0.9,0.999), weight_decay=0.01)',
                    lr_schedule=f'linear warmup {args.warmup} steps then constant' + (
                        f', cosine to {args.lr_min:g} over steps {args.decay_from}..{args.decay_from + args.decay_steps}'
                        if args.decay_from else ''),
                    ema=f'decay min({args.ema}, (1+step)/(10+step)) on UNet and text encoder',
                    objective='DDPM epsilon MSE, t ~ U{0..999}' + (
                        f' (U{{{t_lo}..{t_hi}}} with p={args.t_focus_frac:g})' if args.t_focus_frac else '') + (
                        f', Min-SNR-{args.min_snr:g} weights min(SNR, {args.min_snr:g})/SNR' if args.min_snr else ''),
                    flips='none')

    def save():
        ck = dict(unet=unet.state_dict(), text=text.state_dict(), ema_unet=ema_unet.state_dict(),
                  ema_text=ema_text.state_dict(), opt=opt.state_dict(), step=step, history=history,
                  wall_seconds=wall_before + time.time() - t_start, py_rng=rng.getstate(),
                  torch_rng=torch.get_rng_state(), vocab=tok.vocab, settings=settings, runs=runs)
        torch.save(ck, ckpt + '.tmp')
        os.replace(ckpt + '.tmp', ckpt)

    focus = [c for c in args.focus_categories.split(',') if c]
    focus_idx = [i for i, it in enumerate(items) if it['category'] in focus]
    rest_idx = [i for i, it in enumerate(items) if it['category'] not in focus]
    if focus:
        log(f'focus: {len(focus_idx)} images in {focus} drawn with p={args.focus_frac}, {len(rest_idx)} others')

    def draw_batch():
        if not focus:
            return rng.sample(range(len(items)), args.batch)
        n_focus = sum(rng.random() < args.focus_frac for _ in range(args.batch))
        return rng.sample(focus_idx, n_focus) + rng.sample(rest_idx, args.batch - n_focus)

    # Text probe: does the model use the prompt? Fixed 64 images, t = 500, fixed noise; loss with each image's label
    # vs with the labels shuffled among them. A gap near 0 means the prompt is ignored.
    probe_rng = random.Random(1234)
    probe_idx = torch.tensor(probe_rng.sample(range(len(items)), 64))
    probe_perm = list(range(64))
    probe_rng.shuffle(probe_perm)
    probe_noise = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1234))

    def text_probe():
        with torch.no_grad():
            x0 = images[probe_idx]
            t = torch.full((64,), 500)
            a = acp[t].view(-1, 1, 1, 1)
            xt = a.sqrt() * x0 + (1 - a).sqrt() * probe_noise
            labels = [items[i]['label'] for i in probe_idx.tolist()]
            out = {}
            for name, ps in (('matched', labels), ('shuffled', [labels[j] for j in probe_perm])):
                out[name] = (ema_unet(xt, t, ema_text(tok(ps))) - probe_noise).pow(2).mean().item()
        return out

    stop = []
    # SIGTERM / Ctrl-C end the run at the next step boundary with a checkpoint, instead of losing the steps
    # since the last one.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda num, _frame: stop.append(num))
    threads = args.threads

    t_start = time.time()
    last_ckpt = t_start
    window = []
    deadline = t_start + args.minutes * 60
    while time.time() < deadline and not stop:
        if args.threads_file and step % 20 == 0 and os.path.exists(args.threads_file):
            try:
                wanted = int(open(args.threads_file).read().strip())
            except ValueError:
                wanted = threads
            if wanted != threads and wanted > 0:
                torch.set_num_threads(wanted)
                log(f'threads {threads} -> {wanted} (from {args.threads_file})')
                threads = wanted
        idx = torch.tensor(draw_batch())
        x0 = images[idx]
        prompts = ['' if rng.random() < args.text_dropout else sample_prompt(items[i], rng) for i in idx.tolist()]
        ids = tok(prompts)
        t = torch.randint(0, 1000, (args.batch,))
        if args.t_focus_frac:
            pick = torch.rand(args.batch) < args.t_focus_frac
            t = torch.where(pick, torch.randint(t_lo, t_hi + 1, (args.batch,)), t)
        noise = torch.randn_like(x0)
        a = acp[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        lr = args.lr * min(1.0, (step - warm_from + 1) / args.warmup)
        if args.decay_from and step >= args.decay_from:
            p = min(1.0, (step - args.decay_from) / args.decay_steps)
            lr = args.lr_min + (args.lr - args.lr_min) * 0.5 * (1 + math.cos(math.pi * p))
        for g in opt.param_groups:
            g['lr'] = lr
        if args.min_snr:
            snr = acp[t] / (1 - acp[t])
            w = torch.clamp(snr, max=args.min_snr) / snr
            per_item = (unet(xt, t, text(ids)) - noise).pow(2).mean(dim=(1, 2, 3))
            loss = (w * per_item).mean()
            mse = per_item.mean().item()  # logged unweighted, comparable with the plain objective
        else:
            loss = F.mse_loss(unet(xt, t, text(ids)), noise)
            mse = loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        ema_update(ema_unet, unet, decay)
        ema_update(ema_text, text, decay)
        window.append(mse)
        if len(window) == 20:
            elapsed = wall_before + time.time() - t_start
            history.append({'step': step, 'loss': float(np.mean(window)), 'wall_seconds': round(elapsed, 1)})
            log(f'step {step} loss {np.mean(window):.4f} lr {lr:.2e} elapsed {elapsed / 60:.1f} min')
            window = []
        if args.probe_every and step % args.probe_every == 0:
            p = text_probe()
            gap = (p['shuffled'] - p['matched']) / p['shuffled']
            if history:
                history[-1].update(probe_matched=p['matched'], probe_shuffled=p['shuffled'])
            log(f'text probe at step {step}: t=500 loss matched {p["matched"]:.5f} shuffled {p["shuffled"]:.5f} '
                f'(prompt lowers it by {100 * gap:.1f}%)')
        if time.time() - last_ckpt > args.ckpt_seconds:
            save()
            last_ckpt = time.time()
            log(f'checkpoint at step {step}')
    save()
    log(f'done: {step} steps' + (f' (stopped by signal {stop[0]})' if stop else ''))
    if not args.no_export:
        import export_default

        export_default.main([])


if __name__ == '__main__':
    use_openblas()
    main()
