"""Minimal PyTorch UNet2DConditionModel with the diffusers module tree, parameter names and SD 1.5 semantics.

The test oracle for the WGSL engine and the model the embedded default is trained with; state_dict keys match
diffusers exactly (see ARCHITECTURE.md for the forward pass spelled out op by op).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED_DOWN = ('DownBlock2D', 'CrossAttnDownBlock2D')
SUPPORTED_UP = ('UpBlock2D', 'CrossAttnUpBlock2D')

DEFAULT_CONFIG = {
    '_class_name': 'UNet2DConditionModel',
    'sample_size': 64,
    'in_channels': 4,
    'out_channels': 4,
    'center_input_sample': False,
    'flip_sin_to_cos': True,
    'freq_shift': 0,
    'down_block_types': ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    'mid_block_type': 'UNetMidBlock2DCrossAttn',
    'up_block_types': ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    'only_cross_attention': False,
    'block_out_channels': [320, 640, 1280, 1280],
    'layers_per_block': 2,
    'downsample_padding': 1,
    'mid_block_scale_factor': 1,
    'act_fn': 'silu',
    'norm_num_groups': 32,
    'norm_eps': 1e-5,
    'cross_attention_dim': 768,
    'attention_head_dim': 8,
    'num_attention_heads': None,
    'use_linear_projection': False,
}


def full_config(config):
    """The config with SD 1.5 defaults filled in for missing keys; rejects what this module does not implement."""
    cfg = dict(DEFAULT_CONFIG)
    cfg.update({k: v for k, v in config.items() if v is not None or k not in cfg})
    for t in cfg['down_block_types']:
        assert t in SUPPORTED_DOWN, t
    for t in cfg['up_block_types']:
        assert t in SUPPORTED_UP, t
    assert cfg['mid_block_type'] == 'UNetMidBlock2DCrossAttn', cfg['mid_block_type']
    assert cfg['act_fn'] == 'silu'
    assert not cfg['only_cross_attention'] and not cfg['center_input_sample']
    assert cfg['mid_block_scale_factor'] == 1
    return cfg


def get_timestep_embedding(timesteps, dim, flip_sin_to_cos, downscale_freq_shift, max_period=10000):
    """diffusers.models.embeddings.get_timestep_embedding (scale 1)."""
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device=timesteps.device)
    exponent = -math.log(max_period) * steps / (half - downscale_freq_shift)
    emb = timesteps.float()[:, None] * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class Timesteps(nn.Module):
    def __init__(self, num_channels, flip_sin_to_cos, downscale_freq_shift):
        super().__init__()
        self.num_channels = num_channels
        self.flip_sin_to_cos = flip_sin_to_cos
        self.downscale_freq_shift = downscale_freq_shift

    def forward(self, timesteps):
        return get_timestep_embedding(timesteps, self.num_channels, self.flip_sin_to_cos, self.downscale_freq_shift)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels, time_embed_dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    """time_embedding_norm='default', output_scale_factor=1, conv_shortcut (1×1) only when channels change."""

    def __init__(self, in_channels, out_channels, temb_channels, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps, affine=True)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1)
        self.nonlinearity = nn.SiLU()
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x, temb):
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        h = h + self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        h = self.conv2(self.dropout(self.nonlinearity(self.norm2(h))))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Attention(nn.Module):
    """diffusers Attention with bias-free q/k/v, biased to_out.0; heads split as [B, S, heads, head_dim]."""

    def __init__(self, query_dim, heads, dim_head, cross_attention_dim=None):
        super().__init__()
        inner = heads * dim_head
        kv_dim = cross_attention_dim if cross_attention_dim is not None else query_dim
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(kv_dim, inner, bias=False)
        self.to_v = nn.Linear(kv_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def forward(self, x, context=None):
        context = x if context is None else context
        b, s, _ = x.shape
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)

        def split(t):
            return t.reshape(b, t.shape[1], self.heads, -1).permute(0, 2, 1, 3)

        q, k, v = split(q), split(k), split(v)
        if x.is_cuda and hasattr(F, 'scaled_dot_product_attention'):
            # torch >= 2.0 on a GPU: the fused kernel (flash / memory-efficient), no S×S matrix in memory. The CPU
            # keeps the explicit math below, which the golden files and the WGSL engine are checked against.
            out = F.scaled_dot_product_attention(q, k, v)  # its default scale is head_dim^-0.5 = self.scale
        else:  # scaling q (S×d) is cheaper than scaling q·kᵀ (S×S)
            probs = torch.softmax(torch.matmul(q * self.scale, k.transpose(-1, -2)), dim=-1)
            out = torch.matmul(probs, v)
        out = out.permute(0, 2, 1, 3).reshape(b, s, -1)
        return self.to_out[1](self.to_out[0](out))


class GEGLU(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)  # exact (erf) GELU


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, dim_head, cross_attention_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn1 = Attention(dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.attn2 = Attention(dim, heads, dim_head, cross_attention_dim)
        self.norm3 = nn.LayerNorm(dim, eps=1e-5)
        self.ff = FeedForward(dim)

    def forward(self, x, context):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class Transformer2DModel(nn.Module):
    """Spatial transformer: GroupNorm(eps 1e-6) → proj_in → blocks → proj_out, plus the input residual."""

    def __init__(self, heads, dim_head, in_channels, groups, cross_attention_dim, use_linear_projection):
        super().__init__()
        inner = heads * dim_head
        self.use_linear_projection = use_linear_projection
        self.norm = nn.GroupNorm(groups, in_channels, eps=1e-6, affine=True)
        if use_linear_projection:
            self.proj_in = nn.Linear(in_channels, inner)
            self.proj_out = nn.Linear(inner, in_channels)
        else:
            self.proj_in = nn.Conv2d(in_channels, inner, 1)
            self.proj_out = nn.Conv2d(inner, in_channels, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, dim_head, cross_attention_dim)])

    def forward(self, x, context):
        b, _, h, w = x.shape
        residual = x
        x = self.norm(x)
        if not self.use_linear_projection:
            x = self.proj_in(x)
        x = x.permute(0, 2, 3, 1).reshape(b, h * w, -1)  # tokens in row-major (y, x) order
        if self.use_linear_projection:
            x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x, context)
        if self.use_linear_projection:
            x = self.proj_out(x)
        x = x.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()
        if not self.use_linear_projection:
            x = self.proj_out(x)
        return x + residual


class Downsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


def spatial_transformers(cfg, channels, heads, count):
    """The `attentions` list of a cross-attention block: heads of size channels // heads."""
    return nn.ModuleList(
        [
            Transformer2DModel(heads, channels // heads, channels, cfg['norm_num_groups'], cfg['cross_attention_dim'],
                               cfg['use_linear_projection'])
            for _ in range(count)
        ]
    )


class DownBlock(nn.Module):
    """DownBlock2D (cross_attn=False) and CrossAttnDownBlock2D (cross_attn=True)."""

    def __init__(self, cfg, in_ch, out_ch, temb_ch, num_layers, add_downsample, cross_attn, heads):
        super().__init__()
        g, eps = cfg['norm_num_groups'], cfg['norm_eps']
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(in_ch if i == 0 else out_ch, out_ch, temb_ch, g, eps) for i in range(num_layers)]
        )
        self.attentions = spatial_transformers(cfg, out_ch, heads, num_layers) if cross_attn else None
        self.downsamplers = nn.ModuleList([Downsample2D(out_ch)]) if add_downsample else None

    def forward(self, x, temb, context):
        outputs = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x, context)
            outputs.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            outputs.append(x)
        return x, outputs


class UpBlock(nn.Module):
    """UpBlock2D / CrossAttnUpBlock2D: each resnet eats cat([x, skip], dim=1) with skips popped last-first."""

    def __init__(self, cfg, in_ch, prev_out_ch, out_ch, temb_ch, num_layers, add_upsample, cross_attn, heads):
        super().__init__()
        g, eps = cfg['norm_num_groups'], cfg['norm_eps']
        resnets = []
        for i in range(num_layers):
            skip_ch = in_ch if i == num_layers - 1 else out_ch
            res_in = prev_out_ch if i == 0 else out_ch
            resnets.append(ResnetBlock2D(res_in + skip_ch, out_ch, temb_ch, g, eps))
        self.resnets = nn.ModuleList(resnets)
        self.attentions = spatial_transformers(cfg, out_ch, heads, num_layers) if cross_attn else None
        self.upsamplers = nn.ModuleList([Upsample2D(out_ch)]) if add_upsample else None

    def forward(self, x, skips, temb, context):
        skips = list(skips)
        for i, resnet in enumerate(self.resnets):
            x = torch.cat([x, skips.pop()], dim=1)
            x = resnet(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x, context)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class UNetMidBlock2DCrossAttn(nn.Module):
    def __init__(self, cfg, ch, temb_ch, heads):
        super().__init__()
        g, eps = cfg['norm_num_groups'], cfg['norm_eps']
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, temb_ch, g, eps), ResnetBlock2D(ch, ch, temb_ch, g, eps)])
        self.attentions = spatial_transformers(cfg, ch, heads, 1)

    def forward(self, x, temb, context):
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, context)
        return self.resnets[1](x, temb)


class UNet2DConditionModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        cfg = full_config(config)
        self.config = cfg
        boc = list(cfg['block_out_channels'])
        n = len(boc)
        heads = cfg['num_attention_heads'] or cfg['attention_head_dim']
        heads = [heads] * n if isinstance(heads, int) else list(heads)
        lpb = cfg['layers_per_block']
        lpb = [lpb] * n if isinstance(lpb, int) else list(lpb)
        temb_ch = boc[0] * 4

        self.conv_in = nn.Conv2d(cfg['in_channels'], boc[0], 3, padding=1)
        self.time_proj = Timesteps(boc[0], cfg['flip_sin_to_cos'], cfg['freq_shift'])
        self.time_embedding = TimestepEmbedding(boc[0], temb_ch)

        self.down_blocks = nn.ModuleList()
        out_ch = boc[0]
        for i, kind in enumerate(cfg['down_block_types']):
            in_ch, out_ch = out_ch, boc[i]
            self.down_blocks.append(
                DownBlock(cfg, in_ch, out_ch, temb_ch, lpb[i], i < n - 1, kind == 'CrossAttnDownBlock2D', heads[i])
            )

        self.mid_block = UNetMidBlock2DCrossAttn(cfg, boc[-1], temb_ch, heads[-1])

        self.up_blocks = nn.ModuleList()
        rev, rev_heads, rev_lpb = boc[::-1], heads[::-1], lpb[::-1]
        out_ch = rev[0]
        for i, kind in enumerate(cfg['up_block_types']):
            prev_out, out_ch = out_ch, rev[i]
            in_ch = rev[min(i + 1, n - 1)]
            self.up_blocks.append(
                UpBlock(cfg, in_ch, prev_out, out_ch, temb_ch, rev_lpb[i] + 1, i < n - 1,
                        kind == 'CrossAttnUpBlock2D', rev_heads[i])
            )

        self.conv_norm_out = nn.GroupNorm(cfg['norm_num_groups'], boc[0], eps=cfg['norm_eps'])
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[0], cfg['out_channels'], 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states):
        t = timestep
        if not torch.is_tensor(t):
            t = torch.tensor([t], dtype=torch.float32, device=sample.device)
        t = t.reshape(-1).expand(sample.shape[0])
        temb = self.time_embedding(self.time_proj(t).to(sample.dtype))

        x = self.conv_in(sample)
        skips = [x]
        for block in self.down_blocks:
            x, outs = block(x, temb, encoder_hidden_states)
            skips.extend(outs)
        x = self.mid_block(x, temb, encoder_hidden_states)
        for block in self.up_blocks:
            k = len(block.resnets)
            x = block(x, skips[-k:], temb, encoder_hidden_states)
            del skips[-k:]
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


def count_params(model):
    return sum(p.numel() for p in model.parameters())
