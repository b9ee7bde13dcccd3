"""Dumps end-to-end golden tensors for the WGSL engine: a seeded random-init UNet (same block types as emoji-tiny,
smaller channels), its forward, MSE loss, input gradient, a plain LoRA's gradients and one LoRA² step.

Writes tools/reference/golden/{unet_config.json, unet_weights.safetensors, unet_golden.safetensors, golden.json};
tensor names are documented in GOLDEN.md. Usage: python3 tools/reference/make_golden.py
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import HERE  # noqa: E402
from st_io import load_file, save_file  # noqa: E402
from unet import UNet2DConditionModel, count_params  # noqa: E402

OUT = os.path.join(HERE, 'golden')
SEED = 1234
# Same block types as emoji-tiny; unequal channels per level (12/24/36, 3/6/9 per group) so that skip/channel bookkeeping bugs in the
# up blocks show, cross_attention_dim 20 differs from every channel count so that k/v transposes show.
GOLDEN_CONFIG = {
    '_class_name': 'UNet2DConditionModel',
    'sample_size': 16,
    'in_channels': 3,
    'out_channels': 3,
    'flip_sin_to_cos': True,
    'freq_shift': 0,
    'down_block_types': ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
    'mid_block_type': 'UNetMidBlock2DCrossAttn',
    'up_block_types': ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
    'block_out_channels': [12, 24, 36],
    'layers_per_block': 1,
    'downsample_padding': 1,
    'mid_block_scale_factor': 1,
    'act_fn': 'silu',
    'norm_num_groups': 4,
    'norm_eps': 1e-5,
    'cross_attention_dim': 20,
    'attention_head_dim': 2,
    'use_linear_projection': False,
}
BATCH, SEQ = 2, 7
TIMESTEPS = [999.0, 37.0]

LORA_LAYER = 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q'
LORA_RANK, LORA_SCALE = 3, 0.75

LORA2_BLOCK = 'up_blocks.0.attentions.0.transformer_blocks.0'
LORA2_LAYERS = [f'{LORA2_BLOCK}.{a}.{p}' for a in ('attn1', 'attn2') for p in ('to_q', 'to_k', 'to_v', 'to_out.0')]
# DESIGN.md §5 defaults.
K, R0, SIGMA, SIGMA_THETA, N_IMAGES, S = 0.9, 2, 0.3, 1.0, 4, 1.0
MU = math.log(1 / (1 - K)) / R0
CAPACITY = 4
R_MAX = 64
# Rates per layer chosen so that D = ceil(ln(1/(1-k))/λ) covers 1..4 with capacity 4 (D < C masks positions).
LORA2_LAMBDAS = [2.5, 1.5, 0.9, 0.6, 1.2, 0.7, 3.0, 1.0]
ADAM = dict(lr_ab=3e-3, lr_rho=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def effective_rank(lam):
    return max(1, min(R_MAX, math.ceil(math.log(1 / (1 - K)) / lam)))


def get_module(root, path):
    m = root
    for p in path.split('.'):
        m = m[int(p)] if p.isdigit() else getattr(m, p)
    return m


def set_module(root, path, new):
    parent_path, name = path.rsplit('.', 1)
    parent = get_module(root, parent_path)
    if name.isdigit():
        parent[int(name)] = new
    else:
        setattr(parent, name, new)


class LoRALinear(nn.Module):
    """y = W0 x + b0 + s · B (A x): plain fixed-rank LoRA."""

    def __init__(self, base, A, B, scale):
        super().__init__()
        self.base, self.scale = base, scale
        self.A, self.B = nn.Parameter(A.clone()), nn.Parameter(B.clone())

    def forward(self, x):
        return self.base(x) + self.scale * F.linear(F.linear(x, self.A), self.B)


class LoRA2Linear(nn.Module):
    """y = W0 x + b0 + s · B[:, :D] (f[:D] ⊙ A[:D] x), f(i) = e^{-λi}(1 - e^{-λ}), λ = softplus(ρ)."""

    def __init__(self, base, A, B, rho, scale):
        super().__init__()
        self.base, self.scale = base, scale
        self.A, self.B = nn.Parameter(A.clone()), nn.Parameter(B.clone())
        self.rho = nn.Parameter(rho.clone())

    def lam(self):
        return F.softplus(self.rho)

    def rank(self):
        return effective_rank(float(self.lam()))

    def importance(self, d):
        lam = self.lam()
        i = torch.arange(d, dtype=torch.float32)
        return torch.exp(-lam * i) * (1 - torch.exp(-lam))

    def forward(self, x):
        d = self.rank()
        return self.base(x) + self.scale * F.linear(self.importance(d) * F.linear(x, self.A[:d]), self.B[:, :d])


def randomize_norms(model, gen):
    """Default init leaves norm weights 1 and biases 0, which would hide affine bugs."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))


def capture_intermediates(model):
    """Forward hooks recording the outputs the engine can compare stage by stage."""
    store = {}

    def hook(name):
        def fn(_m, _inp, out):
            store[name] = (out[0] if isinstance(out, tuple) else out).detach().clone()

        return fn

    handles = [model.time_embedding.register_forward_hook(hook('time_embedding')),
               model.conv_in.register_forward_hook(hook('conv_in')),
               model.mid_block.register_forward_hook(hook('mid_block'))]
    for i, b in enumerate(model.down_blocks):
        handles.append(b.register_forward_hook(hook(f'down_blocks.{i}')))
        if b.attentions is not None:
            handles.append(b.attentions[0].register_forward_hook(hook(f'down_blocks.{i}.attentions.0')))
    for i, b in enumerate(model.up_blocks):
        handles.append(b.register_forward_hook(hook(f'up_blocks.{i}')))
    handles.append(model.down_blocks[0].resnets[0].register_forward_hook(hook('down_blocks.0.resnets.0')))
    return store, handles


def main():
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = UNet2DConditionModel(GOLDEN_CONFIG)
    randomize_norms(model, gen)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    sample = torch.randn(BATCH, 3, 16, 16, generator=gen)
    ehs = torch.randn(BATCH, SEQ, GOLDEN_CONFIG['cross_attention_dim'], generator=gen)
    timestep = torch.tensor(TIMESTEPS)
    target = torch.randn(BATCH, 3, 16, 16, generator=gen)
    T = {'inputs.sample': sample, 'inputs.timestep': timestep, 'inputs.encoder_hidden_states': ehs,
         'inputs.target': target}

    # 1. forward, loss, gradient w.r.t. the input sample (all weights frozen).
    store, handles = capture_intermediates(model)
    x = sample.clone().requires_grad_(True)
    out = model(x, timestep, ehs)
    loss = F.mse_loss(out, target)
    loss.backward()
    for h in handles:
        h.remove()
    T.update({'forward.out': out.detach(), 'forward.loss': loss.detach().reshape(1), 'grad.sample': x.grad})
    T['intermediate.time_proj'] = model.time_proj(timestep)
    T.update({f'intermediate.{k}': v for k, v in store.items()})

    # 2. plain LoRA on one projection: gradients of A and B.
    base = get_module(model, LORA_LAYER)
    A = 0.2 * torch.randn(LORA_RANK, base.in_features, generator=gen)
    B = 0.2 * torch.randn(base.out_features, LORA_RANK, generator=gen)
    lora = LoRALinear(base, A, B, LORA_SCALE)
    set_module(model, LORA_LAYER, lora)
    out = model(sample, timestep, ehs)
    loss = F.mse_loss(out, target)
    loss.backward()
    T.update({'lora.A': A, 'lora.B': B, 'lora.out': out.detach(), 'lora.loss': loss.detach().reshape(1),
              'lora.grad.A': lora.A.grad, 'lora.grad.B': lora.B.grad})
    set_module(model, LORA_LAYER, base)

    # 3. LoRA² on the 8 attention projections of one transformer block: one step.
    adapters = {}
    for name, lam in zip(LORA2_LAYERS, LORA2_LAMBDAS):
        base = get_module(model, name)
        A = torch.randn(CAPACITY, base.in_features, generator=gen) / math.sqrt(base.in_features)
        B = 0.3 * torch.randn(base.out_features, CAPACITY, generator=gen)
        rho = torch.tensor(math.log(math.expm1(lam)))
        adapters[name] = LoRA2Linear(base, A, B, rho, S)
        set_module(model, name, adapters[name])
        T.update({f'lora2.{name}.A': A, f'lora2.{name}.B': B, f'lora2.{name}.rho': rho.reshape(1)})
    ranks_before = {n: a.rank() for n, a in adapters.items()}
    out = model(sample, timestep, ehs)
    mse = F.mse_loss(out, target)
    rank_prior = sum((a.lam() - MU) ** 2 for a in adapters.values()) / (2 * SIGMA ** 2)
    weight_prior = sum(a.A.pow(2).sum() + a.B.pow(2).sum() for a in adapters.values()) / (2 * SIGMA_THETA ** 2)
    total = mse + (rank_prior + weight_prior) / N_IMAGES
    total.backward()
    T.update({'lora2.out': out.detach(), 'lora2.loss': total.detach().reshape(1),
              'lora2.loss_mse': mse.detach().reshape(1), 'lora2.rank_prior': rank_prior.detach().reshape(1),
              'lora2.weight_prior': weight_prior.detach().reshape(1)})
    for n, a in adapters.items():
        T.update({f'lora2.{n}.grad.A': a.A.grad.clone(), f'lora2.{n}.grad.B': a.B.grad.clone(),
                  f'lora2.{n}.grad.rho': a.rho.grad.reshape(1).clone(),
                  f'lora2.{n}.importance': a.importance(CAPACITY).detach()})
    ab = [p for a in adapters.values() for p in (a.A, a.B)]
    rhos = [a.rho for a in adapters.values()]
    opt = torch.optim.AdamW([{'params': ab, 'lr': ADAM['lr_ab']}, {'params': rhos, 'lr': ADAM['lr_rho']}],
                            betas=ADAM['betas'], eps=ADAM['eps'], weight_decay=ADAM['weight_decay'])
    opt.step()
    ranks_after = {n: a.rank() for n, a in adapters.items()}
    for n, a in adapters.items():
        T.update({f'lora2.{n}.step.A': a.A.detach().clone(), f'lora2.{n}.step.B': a.B.detach().clone(),
                  f'lora2.{n}.step.rho': a.rho.detach().reshape(1).clone()})

    os.makedirs(OUT, exist_ok=True)
    for name, base in ((n, a.base) for n, a in adapters.items()):
        set_module(model, name, base)
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(weights, os.path.join(OUT, 'unet_weights.safetensors'), {'format': 'pt'})
    save_file({k: v.detach().float().contiguous() for k, v in T.items()},
              os.path.join(OUT, 'unet_golden.safetensors'))
    with open(os.path.join(OUT, 'unet_config.json'), 'w') as f:
        json.dump(GOLDEN_CONFIG, f, indent=2)
    meta = {
        'about': 'Golden tensors from tools/reference/make_golden.py (torch %s); see tools/reference/GOLDEN.md.'
                 % torch.__version__,
        'seed': SEED,
        'unet_params': count_params(model),
        'batch': BATCH,
        'sequence_length': SEQ,
        'timesteps': TIMESTEPS,
        'loss': 'mean squared error over all elements of out - target',
        'lora': {'layer': LORA_LAYER, 'rank': LORA_RANK, 'scale': LORA_SCALE,
                 'forward': 'y = W0 x + b0 + scale * B (A x)'},
        'lora2': {
            'layers': LORA2_LAYERS,
            'forward': 'y = W0 x + b0 + s * B[:, :D] (f[:D] * (A[:D] x)), f(i) = exp(-lam i)(1 - exp(-lam)), '
                       'lam = softplus(rho)',
            'loss': 'mse + (1/N) * (sum_l (lam_l - mu)^2 / (2 sigma^2) + sum over ALL allocated entries of every A '
                    'and B (masked positions included) of theta^2 / (2 sigma_theta^2))',
            'k': K, 'r0': R0, 'mu': MU, 'sigma': SIGMA, 'sigma_theta': SIGMA_THETA, 'N': N_IMAGES, 's': S,
            'capacity': CAPACITY, 'r_max': R_MAX, 'lambdas': LORA2_LAMBDAS,
            'rank_rule': 'D = clamp(ceil(ln(1/(1-k)) / lam), 1, r_max)',
            'ranks_before': ranks_before,
            'ranks_after_step': ranks_after,
            'adamw': {**ADAM, 'note': 'torch.optim.AdamW, first step (bias-corrected), moments start at 0; '
                                      'ρ in its own group'},
        },
    }
    with open(os.path.join(OUT, 'golden.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    # Round-trip check of the writer.
    back = load_file(os.path.join(OUT, 'unet_golden.safetensors'))
    assert all(torch.equal(back[k], T[k].detach().float()) for k in T)
    for f_ in sorted(os.listdir(OUT)):
        print(f_, os.path.getsize(os.path.join(OUT, f_)))
    print('params', count_params(model), 'loss', float(loss), 'lora2 total', float(total), ranks_before, ranks_after)


if __name__ == '__main__':
    main()
