"""Pretrains the embedded default model (tiny pixel-space UNet + word-level text encoder) on the emoji corpus.

DDPM epsilon objective, AdamW, EMA, 10% empty-prompt dropout for classifier-free guidance, no flips. Runs for a
wall-clock budget, checkpoints atomically every few minutes (stop it any time; --resume continues), then exports
public/models/emoji-tiny/ and renders docs/default-model-grid-torch.png.
Usage: nice -n 10 python3 tools/reference/train_default.py --minutes 70 [--resume]
On a CUDA machine: python3 tools/reference/train_default.py --device cuda --bf16 --from-export --batch 384 \
    --minutes 7.5 --cosine-to-end --snapshot-dir OUT --snapshot-at 0.5,0.75 --no-export --ckpt /tmp/ckpt.pt
(the full command of the shipped H200 run is in tools/reference/README.md)
(needs only this folder, public/models/emoji-tiny and .data/corpus.npz; from_snapshot.py turns a snapshot into a
checkpoint that export_default.py and recognize.py --ckpt read)
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

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DATA, HERE, MODEL_DIR, TINY_UNET_CONFIG, alphas_cumprod, load_corpus, use_openblas  # noqa: E402
from text import IDENTIFIERS, TextEncoder, Tokenizer  # noqa: E402
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
        pe, pm = list(ema.parameters()), [p.detach() for p in model.parameters()]
        torch._foreach_mul_(pe, decay)
        torch._foreach_add_(pe, pm, alpha=1 - decay)


def write_snapshot(out_dir, ema_unet, ema_text, meta):
    """EMA weights as f16 safetensors (unet.* and text.* keys, one file under the device tool's 16 MiB per file)
    and their step, loss history and settings in snapshots.json, keyed by file name."""
    from st_io import save_file

    name = f'ema-{meta["step"]}.safetensors'
    tensors = {f'unet.{k}': v.half() for k, v in ema_unet.state_dict().items()}
    tensors.update({f'text.{k}': v.half() for k, v in ema_text.state_dict().items()})
    save_file(tensors, os.path.join(out_dir, name + '.tmp'))
    os.replace(os.path.join(out_dir, name + '.tmp'), os.path.join(out_dir, name))
    index_path = os.path.join(out_dir, 'snapshots.json')
    index = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    index[name] = meta
    with open(index_path + '.tmp', 'w') as f:
        json.dump(index, f)
    os.replace(index_path + '.tmp', index_path)
    return name


def start_profiler(dev):
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
    prof = profile(activities=acts)
    prof.__enter__()
    return prof


def log_profile(prof, dev, steps):
    """Where the time of `steps` training steps went: wall time against the device's busy time and the number of
    kernels per step (launch-bound when the device is idle most of the wall time), then the top ops."""
    if dev.type == 'cuda':
        torch.cuda.synchronize(dev)
    prof.__exit__(None, None, None)
    events = prof.events()
    wall_us = (max(e.time_range.end for e in events) - min(e.time_range.start for e in events)) / steps
    from torch.autograd import DeviceType

    kernels = [e for e in events if e.device_type == DeviceType.CUDA]
    busy_us = sum(getattr(e, 'device_time', None) or getattr(e, 'cuda_time', 0) for e in kernels) / steps
    top_level = sum(e.cpu_parent is None for e in events if e.device_type == DeviceType.CPU) / steps
    log(f'profile of {steps} steps: {wall_us / 1e3:.1f} ms wall and {top_level:.0f} top-level ops per step' + (
        f', device busy {busy_us / 1e3:.1f} ms per step ({100 * busy_us / wall_us:.0f}%) in {len(kernels) / steps:.0f} '
        f'kernels per step' if dev.type == 'cuda' else ''))
    table = None
    keys = (['self_device_time_total', 'self_cuda_time_total'] if dev.type == 'cuda' else []) + ['self_cpu_time_total']
    for key in keys:
        try:
            table = prof.key_averages().table(sort_by=key, row_limit=15)
            break
        except (AttributeError, KeyError, ValueError, RuntimeError):
            continue
    for line in (table or '').splitlines():
        log('  ' + line)


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
    ap.add_argument('--identifier-dropin', type=float, default=0.0,
                    help='probability that a (non-empty) prompt gets a random reserved identifier <v1>..<v8> in front: '
                         'the model learns that an identifier alone changes nothing, so a personalization run on '
                         '"<v1> dog face" starts from "dog face" instead of from what an untrained <v1> draws')
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
    ap.add_argument('--from-snapshot', default='',
                    help='start from an EMA snapshot (ema-STEP.safetensors beside its snapshots.json) of an earlier '
                         '--snapshot-dir run, with a fresh optimizer and a new warm-up')
    ap.add_argument('--no-export', action='store_true')
    ap.add_argument('--ckpt', default=CKPT)
    ap.add_argument('--device', default='cpu', help='cpu or cuda')
    ap.add_argument('--bf16', action='store_true', help='bf16 autocast for the forward and backward (CUDA)')
    ap.add_argument('--cosine-to-end', action='store_true',
                    help='after the warm-up, cosine from --lr to --lr-min over the --minutes budget (wall clock), '
                         'for a run whose step count is not known ahead (a GPU lease)')
    ap.add_argument('--snapshot-dir', default='',
                    help='also write EMA snapshots here (write_snapshot) at the --snapshot-at fractions of the budget '
                         'and at the end')
    ap.add_argument('--snapshot-at', default='')
    ap.add_argument('--log-every', type=int, default=20, help='steps per logged loss mean')
    ap.add_argument('--compile', default='', choices=['', 'default', 'reduce-overhead', 'max-autotune'],
                    help='torch.compile the training forward with this mode (torch >= 2); checked with one full '
                         'step first, eager if it fails')
    ap.add_argument('--profile-steps', type=int, default=0,
                    help='profile this many steps (from the 20th of the run) and log where the time went')
    args = ap.parse_args()
    ckpt = args.ckpt
    if ckpt != CKPT:
        global LOG
        LOG = ckpt + '.log'
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    if dev.type == 'cuda':
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    rng = random.Random(args.seed)

    def to_dev(t):  # a host tensor to the device; on CUDA through pinned memory, so the CPU does not wait for the GPU
        return t.pin_memory().to(dev, non_blocking=True) if dev.type == 'cuda' else t

    items, images = load_corpus()  # images [N,3,32,32] in [-1,1]
    images = images.to(dev)
    snap = None
    if args.from_snapshot:
        from from_snapshot import read_snapshot

        snap = read_snapshot(args.from_snapshot)  # (ema_unet, ema_text, meta)
        tok = Tokenizer(snap[2]['vocab'], max_length=16)
    elif args.from_export:
        # The export's own vocabulary (the embedding rows must match it); needs no node_modules/emojibase-data.
        tok = Tokenizer.from_json(os.path.join(MODEL_DIR, 'tokenizer.json'))
    else:
        tok = build_tokenizer(items)

    unet = UNet2DConditionModel(TINY_UNET_CONFIG)
    text = TextEncoder(len(tok.vocab), dim=TINY_UNET_CONFIG['cross_attention_dim'], max_length=tok.max_length)
    unet.to(dev)
    text.to(dev)
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), weight_decay=0.01,
                            **({'fused': True} if dev.type == 'cuda' else {}))
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
    elif snap:
        if os.path.exists(ckpt):
            sys.exit(f'{ckpt} exists: continue it with --resume, or move it away to start from the snapshot')
        for m, e, sd in ((unet, ema_unet, snap[0]), (text, ema_text, snap[1])):
            m.load_state_dict(sd)
            e.load_state_dict(sd)
        meta = snap[2]
        step, wall_before, history, runs = meta['step'], meta['wall_seconds'], meta['history'], meta['runs']
        warm_from = step
        log(f'from snapshot {args.from_snapshot} at step {step} (its EMA weights; fresh optimizer, warm-up from here)')
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
    if dev.type == 'cuda':
        log(f'device {torch.cuda.get_device_name(dev)}, torch {torch.__version__}, bf16 autocast {args.bf16}')
    log(f'unet params {count_params(unet)}, text params {count_params(text)}, vocab {len(tok.vocab)}, '
        f'images {len(items)}, args {vars(args)}')

    runs.append({'from_step': step, 'args': vars(args)})
    acp = alphas_cumprod().float().to(dev)
    t_lo, t_hi = (int(v) for v in args.t_focus.split(',')) if args.t_focus else (0, 999)
    settings = dict(vars(args), optimizer='AdamW(betas=(0.9,0.999), weight_decay=0.01)',
                    lr_schedule=f'linear warmup {args.warmup} steps then ' + (
                        f'cosine to {args.lr_min:g} over the {args.minutes:g}-minute budget (wall clock)'
                        if args.cosine_to_end else 'constant') + (
                        f', cosine to {args.lr_min:g} over steps {args.decay_from}..{args.decay_from + args.decay_steps}'
                        if args.decay_from else ''),
                    ema=f'decay min({args.ema}, (1+step)/(10+step)) on UNet and text encoder',
                    hardware=(torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu') + (
                        ', bf16 autocast' if args.bf16 else ''),
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
    probe_noise = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1234)).to(dev)
    probe_idx = probe_idx.to(dev)

    def text_probe():
        with torch.no_grad():
            x0 = images[probe_idx]
            t = torch.full((64,), 500, device=dev)
            a = acp[t].view(-1, 1, 1, 1)
            xt = a.sqrt() * x0 + (1 - a).sqrt() * probe_noise
            labels = [items[i]['label'] for i in probe_idx.tolist()]
            out = {}
            for name, ps in (('matched', labels), ('shuffled', [labels[j] for j in probe_perm])):
                out[name] = (ema_unet(xt, t, ema_text(tok(ps).to(dev))) - probe_noise).pow(2).mean().item()
        return out

    stop = []
    # SIGTERM / Ctrl-C end the run at the next step boundary with a checkpoint, instead of losing the steps
    # since the last one.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda num, _frame: stop.append(num))
    threads = args.threads

    if args.bf16:
        try:  # one forward and backward under autocast before committing the run to it
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
                out = unet(images[:2], torch.tensor([10, 900], device=dev), text(tok(['dog', '']).to(dev)))
            out.float().pow(2).mean().backward()
            opt.zero_grad(set_to_none=True)
        except RuntimeError as e:
            args.bf16 = False
            settings['hardware'] = settings['hardware'].replace(', bf16 autocast', '')
            log(f'bf16 autocast failed here ({str(e).splitlines()[0]}): training in f32')
    autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=args.bf16)
    forward = unet  # the training forward; EMA, probes and checkpoints use unet itself (compiling shares its weights)
    if args.compile:
        t_compile = time.time()
        try:  # one full-size step, so the compiled graph is for the shapes of the run (no recompile in the loop)
            if not hasattr(torch, 'compile'):
                raise RuntimeError(f'torch {torch.__version__} has no torch.compile')
            compiled = torch.compile(unet, mode=args.compile)
            n = args.batch
            with autocast:
                out = compiled(images[:n], torch.randint(0, 1000, (n,), device=dev), text(tok(['dog'] * n).to(dev)))
            out.float().pow(2).mean().backward()
            opt.zero_grad(set_to_none=True)
            if dev.type == 'cuda':
                torch.cuda.synchronize(dev)
            forward = compiled
            log(f'torch.compile mode {args.compile}: compiled and checked in {time.time() - t_compile:.0f} s')
        except Exception as e:  # noqa: BLE001 -- dynamo/inductor raise many types; any of them means eager
            args.compile = ''
            log(f'torch.compile failed here after {time.time() - t_compile:.0f} s '
                f'({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}): eager')
    settings['compile'] = args.compile
    budget = args.minutes * 60
    snapshot_at = sorted(float(v) for v in args.snapshot_at.split(',') if v)

    def snapshot():
        meta = dict(step=step, history=history, wall_seconds=wall_before + time.time() - t_start, vocab=tok.vocab,
                    settings=settings, runs=runs, unet_params=count_params(unet))
        name = write_snapshot(args.snapshot_dir, ema_unet, ema_text, meta)
        log(f'snapshot {name} at step {step}')

    run_from_step = step
    t_start = time.time()
    last_ckpt = t_start
    window = []
    deadline = t_start + budget
    prof = None  # the profiler while steps [20, 20 + --profile-steps) of the run are recorded
    while time.time() < deadline and not stop:
        try:  # a report, never a reason to lose the lease's training
            if args.profile_steps and step - run_from_step == 20:
                prof = start_profiler(dev)
            elif prof and step - run_from_step == 20 + args.profile_steps:
                prof, done = None, prof
                log_profile(done, dev, args.profile_steps)
        except Exception as e:  # noqa: BLE001
            prof = None
            log(f'profiling failed ({type(e).__name__}: {e}); training goes on')
        if args.snapshot_dir and snapshot_at and time.time() - t_start >= snapshot_at[0] * budget:
            snapshot_at.pop(0)
            snapshot()
        if args.threads_file and step % 20 == 0 and os.path.exists(args.threads_file):
            try:
                wanted = int(open(args.threads_file).read().strip())
            except ValueError:
                wanted = threads
            if wanted != threads and wanted > 0:
                torch.set_num_threads(wanted)
                log(f'threads {threads} -> {wanted} (from {args.threads_file})')
                threads = wanted
        idx = draw_batch()
        x0 = images[to_dev(torch.tensor(idx))]
        prompts = ['' if rng.random() < args.text_dropout else sample_prompt(items[i], rng) for i in idx]
        if args.identifier_dropin:
            prompts = [f'{rng.choice(IDENTIFIERS)} {p}' if p and rng.random() < args.identifier_dropin else p
                       for p in prompts]
        ids = to_dev(tok(prompts))
        t = torch.randint(0, 1000, (args.batch,), device=dev)
        if args.t_focus_frac:
            pick = torch.rand(args.batch, device=dev) < args.t_focus_frac
            t = torch.where(pick, torch.randint(t_lo, t_hi + 1, (args.batch,), device=dev), t)
        noise = torch.randn_like(x0)
        a = acp[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        lr = args.lr * min(1.0, (step - warm_from + 1) / args.warmup)
        if args.decay_from and step >= args.decay_from:
            p = min(1.0, (step - args.decay_from) / args.decay_steps)
            lr = args.lr_min + (args.lr - args.lr_min) * 0.5 * (1 + math.cos(math.pi * p))
        if args.cosine_to_end and step - warm_from >= args.warmup:
            p = min(1.0, (time.time() - t_start) / budget)
            lr = args.lr_min + (args.lr - args.lr_min) * 0.5 * (1 + math.cos(math.pi * p))
        for g in opt.param_groups:
            g['lr'] = lr
        with autocast:
            eps = forward(xt, t, text(ids)).float()
        if args.min_snr:
            snr = acp[t] / (1 - acp[t])
            w = torch.clamp(snr, max=args.min_snr) / snr
            per_item = (eps - noise).pow(2).mean(dim=(1, 2, 3))
            loss = (w * per_item).mean()
            mse = per_item.mean().detach()  # logged unweighted, comparable with the plain objective
        else:
            loss = F.mse_loss(eps, noise)
            mse = loss.detach()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        ema_update(ema_unet, unet, decay)
        ema_update(ema_text, text, decay)
        window.append(mse)  # a tensor: read back once per window, so a GPU is not synchronised every step
        if len(window) == args.log_every:
            elapsed = wall_before + time.time() - t_start
            mean = torch.stack(window).mean().item()
            history.append({'step': step, 'loss': mean, 'wall_seconds': round(elapsed, 1)})
            log(f'step {step} loss {mean:.4f} lr {lr:.2e} elapsed {elapsed / 60:.1f} min' + (
                f', {step - run_from_step} steps in {time.time() - t_start:.0f} s, peak GPU memory '
                f'{torch.cuda.max_memory_allocated(dev) / 2**20:.0f} MiB' if dev.type == 'cuda' else ''))
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
    if args.snapshot_dir:
        snapshot()
    save()
    log(f'done: {step} steps' + (f' (stopped by signal {stop[0]})' if stop else ''))
    if not args.no_export:
        import export_default

        export_default.main([])


if __name__ == '__main__':
    use_openblas()
    main()
