"""Minimal PyTorch AutoencoderKL (the Stable Diffusion VAE) with diffusers' module tree and state_dict keys.

Latent models ship it as two ONNX files (vae_encoder.onnx, vae_decoder.onnx) beside diffusers' vae/config.json;
make_micro_latent.py builds a seeded one and the golden tensors the studio's latent path is checked against.
"""

import torch
import torch.nn.functional as F
from torch import nn

from unet import Upsample2D  # nearest ×2 then a 3×3 conv, the same module (and key names) in the VAE's decoder

EPS = 1e-6  # every GroupNorm of diffusers' Encoder/Decoder (resnets, attention, conv_norm_out)

DEFAULT_CONFIG = {  # SD 1.5's vae/config.json
    '_class_name': 'AutoencoderKL',
    '_diffusers_version': '0.27.0',
    'in_channels': 3,
    'out_channels': 3,
    'down_block_types': ['DownEncoderBlock2D'] * 4,
    'up_block_types': ['UpDecoderBlock2D'] * 4,
    'block_out_channels': [128, 256, 512, 512],
    'layers_per_block': 2,
    'act_fn': 'silu',
    'latent_channels': 4,
    'norm_num_groups': 32,
    'sample_size': 512,
    'scaling_factor': 0.18215,
}


def full_config(config):
    """The config with SD 1.5 defaults filled in for missing keys; rejects what this module does not implement."""
    cfg = dict(DEFAULT_CONFIG)
    cfg.update(config)
    assert all(t == 'DownEncoderBlock2D' for t in cfg['down_block_types']), cfg['down_block_types']
    assert all(t == 'UpDecoderBlock2D' for t in cfg['up_block_types']), cfg['up_block_types']
    assert len(cfg['down_block_types']) == len(cfg['up_block_types']) == len(cfg['block_out_channels'])
    assert cfg['act_fn'] == 'silu'
    return cfg


class ResnetBlock2D(nn.Module):
    """diffusers ResnetBlock2D with temb_channels=None: no time embedding, output_scale_factor 1."""

    def __init__(self, in_channels, out_channels, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=EPS, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=EPS, affine=True)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nonlinearity = nn.SiLU()
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x):
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        h = self.conv2(self.dropout(self.nonlinearity(self.norm2(h))))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Attention(nn.Module):
    """The VAE mid block's attention: one head over the H·W positions, biased q/k/v/out, GroupNorm in front,
    the input added back (diffusers Attention with residual_connection=True, as converted from the old AttnBlock)."""

    def __init__(self, channels, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=EPS, affine=True)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])
        self.scale = channels ** -0.5

    def forward(self, x):
        b, c, h, w = x.shape
        s = self.group_norm(x).flatten(2).transpose(1, 2)  # [B, H·W, C]
        q, k, v = self.to_q(s), self.to_k(s), self.to_v(s)
        probs = torch.softmax(torch.matmul(q * self.scale, k.transpose(1, 2)), dim=-1)
        out = self.to_out[1](self.to_out[0](torch.matmul(probs, v)))
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class UNetMidBlock2D(nn.Module):
    """resnet → attention → resnet, all at one width."""

    def __init__(self, channels, groups):
        super().__init__()
        self.attentions = nn.ModuleList([Attention(channels, groups)])
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, groups) for _ in range(2)])

    def forward(self, x):
        x = self.resnets[0](x)
        return self.resnets[1](self.attentions[0](x))


class Downsample2D(nn.Module):
    """3×3 stride-2 conv without padding after padding right and bottom by one (diffusers' padding=0 path)."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class DownEncoderBlock2D(nn.Module):
    def __init__(self, in_channels, out_channels, layers, groups, add_downsample):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups) for i in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(out_channels)]) if add_downsample else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
        return x


class UpDecoderBlock2D(nn.Module):
    def __init__(self, in_channels, out_channels, layers, groups, add_upsample):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups) for i in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if add_upsample else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class Encoder(nn.Module):
    """pixels → mean ‖ logvar (2·latent_channels) at 1/2^(blocks−1) of the side."""

    def __init__(self, cfg):
        super().__init__()
        ch, g, n = cfg['block_out_channels'], cfg['norm_num_groups'], len(cfg['block_out_channels'])
        self.conv_in = nn.Conv2d(cfg['in_channels'], ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList([
            DownEncoderBlock2D(ch[max(i - 1, 0)], ch[i], cfg['layers_per_block'], g, add_downsample=i < n - 1)
            for i in range(n)])
        self.mid_block = UNetMidBlock2D(ch[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=EPS, affine=True)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(ch[-1], 2 * cfg['latent_channels'], 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        x = self.mid_block(x)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


class Decoder(nn.Module):
    """latents (after post_quant_conv) → pixels; up blocks run over the reversed widths, layers_per_block + 1
    resnets each."""

    def __init__(self, cfg):
        super().__init__()
        ch, g, n = list(reversed(cfg['block_out_channels'])), cfg['norm_num_groups'], len(cfg['block_out_channels'])
        self.conv_in = nn.Conv2d(cfg['latent_channels'], ch[0], 3, padding=1)
        self.mid_block = UNetMidBlock2D(ch[0], g)
        self.up_blocks = nn.ModuleList([
            UpDecoderBlock2D(ch[max(i - 1, 0)], ch[i], cfg['layers_per_block'] + 1, g, add_upsample=i < n - 1)
            for i in range(n)])
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=EPS, affine=True)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(ch[-1], cfg['out_channels'], 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = full_config(config)
        latent = self.config['latent_channels']
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self.quant_conv = nn.Conv2d(2 * latent, 2 * latent, 1)
        self.post_quant_conv = nn.Conv2d(latent, latent, 1)

    @property
    def downscale(self):
        return 2 ** (len(self.config['block_out_channels']) - 1)

    def encode_parameters(self, x):
        """pixels [B, 3, H, W] in [−1, 1] → the latent distribution's mean ‖ logvar [B, 2L, H/f, W/f] (unscaled)."""
        return self.quant_conv(self.encoder(x))

    def encode_mean(self, x):
        """The distribution's mean [B, L, H/f, W/f]; the UNet's latents are this × scaling_factor."""
        return self.encode_parameters(x)[:, : self.config['latent_channels']]

    def decode(self, z):
        """Latents already divided by scaling_factor [B, L, h, w] → pixels [B, 3, h·f, w·f] in about [−1, 1]."""
        return self.decoder(self.post_quant_conv(z))


class EncoderPart(nn.Module):
    """What vae_encoder.onnx computes: sample → latent_parameters (mean ‖ logvar). It holds the VAE's own modules
    under their diffusers names, so the ONNX initializers are named like the state_dict keys."""

    def __init__(self, vae):
        super().__init__()
        self.encoder = vae.encoder
        self.quant_conv = vae.quant_conv

    def forward(self, sample):
        return self.quant_conv(self.encoder(sample))


class DecoderPart(nn.Module):
    """What vae_decoder.onnx computes: latent_sample (already ÷ scaling_factor) → sample."""

    def __init__(self, vae):
        super().__init__()
        self.post_quant_conv = vae.post_quant_conv
        self.decoder = vae.decoder

    def forward(self, latent_sample):
        return self.decoder(self.post_quant_conv(latent_sample))
