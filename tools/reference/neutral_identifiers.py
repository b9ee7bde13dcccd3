"""Makes the default model's reserved identifiers <v1>..<v8> neutral: "<v1> dog face" draws what "dog face" draws.

Pretraining never showed the identifiers, so their embedding rows kept their random start, and a prompt with one
drew something else (recognize.py --prompt-prefix "<v1> ": median rank 211 against 84 without; "dog face" from
rank ~1-10 to 339-903). A personalization run on "<v1> dog face" then started from that instead of from the class,
which is what DreamBooth's identifier is meant to start from.

This trains only those eight rows of the text encoder's token embedding, with the rest of the model frozen, so that
the UNet's prediction for a corpus image noised at a random t under a prompt with an identifier put in at a random
word position matches its prediction under the same prompt without it (the frozen model is the teacher; an empty
prompt teaches that "<vN>" alone is ""). Every other weight is untouched, so prompts without an identifier render
exactly as before; the script checks that, then writes text_encoder.onnx (and its golden check) through
export_default.py's exporter and records the run in training.json.

Usage: /usr/bin/python3 tools/reference/neutral_identifiers.py [--steps 200] [--batch 32] [--lr 0.01] [--dry-run]
(about 14 minutes on two CPU cores; needs .data/corpus.npz from prepare_corpus.py)
"""

import argparse
import json
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import HERE, MODEL_DIR, TINY_UNET_CONFIG, alphas_cumprod, load_corpus, use_openblas  # noqa: E402
from export_default import export_onnx  # noqa: E402
from onnx_weights import text_encoder_state_dict  # noqa: E402
from st_io import load_file  # noqa: E402
from text import IDENTIFIERS, TextEncoder, Tokenizer, split_words  # noqa: E402
from train_default import sample_prompt  # noqa: E402
from unet import UNet2DConditionModel  # noqa: E402

CHECK_PROMPTS = ['grinning face', 'dog face', 'red heart', 'smiling face with sunglasses', '']


def with_identifier(prompt, rng):
    """The prompt with a random identifier put in at a random word position ("<vN>" alone for an empty prompt)."""
    words = split_words(prompt)
    words.insert(rng.randint(0, len(words)), rng.choice(IDENTIFIERS))
    return ' '.join(words)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=200)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--lr', type=float, default=0.01)
    ap.add_argument('--empty-frac', type=float, default=0.1, help='share of empty prompts ("<vN>" alone vs "")')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--dry-run', action='store_true', help='train and report, write nothing')
    args = ap.parse_args(argv)
    use_openblas()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    items, images = load_corpus()
    tok = Tokenizer.from_json(os.path.join(MODEL_DIR, 'tokenizer.json'))
    unet = UNet2DConditionModel(TINY_UNET_CONFIG)
    unet.load_state_dict({k: v.float() for k, v in load_file(os.path.join(MODEL_DIR, 'unet.safetensors')).items()})
    text = TextEncoder(len(tok.vocab), dim=TINY_UNET_CONFIG['cross_attention_dim'], max_length=tok.max_length)
    text.load_state_dict(text_encoder_state_dict(os.path.join(MODEL_DIR, 'text_encoder.onnx')))
    unet.eval()
    text.eval()
    for p in list(unet.parameters()) + list(text.parameters()):
        p.requires_grad_(False)
    emb = text.token_embedding.weight
    before = emb.detach().clone()
    ident_ids = torch.tensor([tok.ids[t] for t in IDENTIFIERS])
    rows = before[ident_ids].clone().requires_grad_(True)
    opt = torch.optim.Adam([rows], lr=args.lr)
    with torch.no_grad():
        reference = text(tok(CHECK_PROMPTS))
    acp = alphas_cumprod().float()

    def embed(prompts, weight):
        """The text encoder with the token embedding `weight` (differentiable in it)."""
        ids = tok(prompts)
        saved = text.token_embedding.weight
        del text.token_embedding.weight
        text.token_embedding.weight = weight
        try:
            return text(ids)
        finally:
            del text.token_embedding.weight
            text.token_embedding.weight = saved

    # A fixed evaluation batch (its own seed): how much an identifier moves the prediction, as a share of how much
    # the whole prompt moves it from the unconditional one (what guidance multiplies).
    erng = random.Random(1234)
    eidx = erng.sample(range(len(items)), 64)
    eplain = [sample_prompt(items[i], erng) for i in eidx]
    emarked = [with_identifier(p, erng) for p in eplain]
    egen = torch.Generator().manual_seed(1234)
    et = torch.randint(0, 1000, (64,), generator=egen)
    ea = acp[et].view(-1, 1, 1, 1)
    ext = ea.sqrt() * images[eidx] + (1 - ea).sqrt() * torch.randn(images[eidx].shape, generator=egen)

    @torch.no_grad()
    def identifier_effect():
        plain = unet(ext, et.float(), text(tok(eplain)))
        uncond = unet(ext, et.float(), text(tok([''] * len(eidx))))
        marked = unet(ext, et.float(), embed(emarked, before.index_put((ident_ids,), rows.detach())))
        return ((marked - plain).pow(2).sum() / (plain - uncond).pow(2).sum()).item()

    effect_before = identifier_effect()
    print(f'identifier effect before: {effect_before:.3f} of the prompt effect', flush=True)
    t0 = time.time()
    history = []
    for step in range(1, args.steps + 1):
        idx = rng.sample(range(len(items)), args.batch)
        plain = ['' if rng.random() < args.empty_frac else sample_prompt(items[i], rng) for i in idx]
        marked = [with_identifier(p, rng) for p in plain]
        x0 = images[idx]
        t = torch.randint(0, 1000, (args.batch,))
        a = acp[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * torch.randn_like(x0)
        with torch.no_grad():
            want = unet(xt, t.float(), text(tok(plain)))
        weight = before.index_put((ident_ids,), rows)
        got = unet(xt, t.float(), embed(marked, weight))
        loss = (got - want).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
        if step % 20 == 0 or step == 1:
            recent = sum(history[-20:]) / len(history[-20:])
            print(f'step {step}/{args.steps}: distillation MSE {recent:.5f} ({time.time() - t0:.0f} s)', flush=True)

    with torch.no_grad():
        emb.copy_(before.index_put((ident_ids,), rows.detach()))
        # Only the identifier rows moved: every prompt without one encodes exactly as before.
        changed = (emb != before).any(dim=1).nonzero().flatten().tolist()
        assert sorted(changed) == sorted(ident_ids.tolist()), f'rows {changed} changed, not only the identifiers'
        drift = (text(tok(CHECK_PROMPTS)) - reference).abs().max().item()
        assert drift == 0.0, f'prompts without an identifier moved by {drift}'
    first, last = sum(history[:20]) / min(20, len(history)), sum(history[-20:]) / min(20, len(history))
    effect_after = identifier_effect()
    print(f'identifier effect (|eps(with <vN>) - eps(prompt)|^2 / |eps(prompt) - eps("")|^2 on 64 fixed noised '
          f'corpus images): {effect_before:.3f} -> {effect_after:.3f}; distillation MSE {first:.5f} (first 20 steps) '
          f'-> {last:.5f} (last 20); prompts without an identifier: unchanged (max |diff| {drift}); '
          f'{time.time() - t0:.0f} s')
    if args.dry_run:
        return
    onnx_check = export_onnx(text, tok, os.path.join(MODEL_DIR, 'text_encoder.onnx'))
    with open(os.path.join(HERE, 'golden', 'text_encoder_check.json'), 'w') as f:
        json.dump(onnx_check, f)
    path = os.path.join(MODEL_DIR, 'training.json')
    with open(path) as f:
        training = json.load(f)
    training['identifiers'] = {
        'what': 'only the token-embedding rows of <v1>..<v8> trained, everything else frozen: the UNet prediction '
                'with an identifier put into the prompt distilled to the prediction without it '
                '(tools/reference/neutral_identifiers.py)',
        'args': vars(args),
        'identifier_effect_before': round(effect_before, 4),
        'identifier_effect_after': round(effect_after, 4),
        'identifier_effect': '|eps(prompt with <vN>) - eps(prompt)|^2 / |eps(prompt) - eps("")|^2, 64 fixed noised '
                             'corpus images',
        'distillation_mse_first_20': round(first, 6),
        'distillation_mse_last_20': round(last, 6),
        'wall_seconds': round(time.time() - t0, 1),
    }
    with open(path, 'w') as f:
        json.dump(training, f, indent=1)
    print(f'wrote {MODEL_DIR}/text_encoder.onnx, golden/text_encoder_check.json, training.json "identifiers"')


if __name__ == '__main__':
    main()
