"""Golden DDIM trajectory of the shipped default model: torch's sampler from fixed noise and fixed text embeddings.

The WGSL pipeline draws its own noise (our seeded RNG, not torch's), so whole-image comparisons between
docs/default-model-grid.png and docs/default-model-grid-torch.png cannot tell a sampler bug from seed variation.
This file pins both: the noise and the embeddings (torch's text encoder on "grinning face" and "", from
golden/emoji_tiny_forward.safetensors), and records x after selected steps of DDIM with guidance, and x after the
last step with the guidance applied only at t <= GUIDANCE_BELOW, and with epsilon taken from the clipped x0.
It also pins Euler ancestral: the unit noise of each ancestral step (inputs.euler_step_noise, drawn after the initial
noise from the same torch generator) and x after the last step, without the clip (diffusers' Euler) and with x0
clipped and the derivative taken from it (sampling.json's recomputeEpsilon).

Usage: python3 tools/reference/make_sampler_golden.py   (writes golden/emoji_tiny_ddim.safetensors)
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import HERE, MODEL_DIR, use_openblas  # noqa: E402
from sample import ddim_sample, euler_a_sample, load_model, seed_streams  # noqa: E402
from st_io import load_file, save_file  # noqa: E402

STEPS = 10
GUIDANCE = 4.0
SEED = 1
RECORD = (1, 4, 10)  # x after these many steps
GUIDANCE_BELOW = 500  # a second trajectory with the guidance applied only at t <= 500 (x_interval.after_10)


@torch.no_grad()
def main():
    torch.set_num_threads(2)
    unet, _, _, sched = load_model(MODEL_DIR)
    forward = load_file(os.path.join(HERE, 'golden', 'emoji_tiny_forward.safetensors'))
    ehs = forward['inputs.encoder_hidden_states'].float()  # [cond "grinning face", uncond ""]
    cond, uncond = ehs[:1], ehs[1:]
    size = unet.config['sample_size']
    noise, step_noise = seed_streams([SEED], (3, size, size))  # noise = torch.randn(1, 3, H, W) of manual_seed(SEED)

    out = {'inputs.noise': noise, 'inputs.encoder_hidden_states': torch.cat([uncond, cond])}

    def record(i, x):
        if i in RECORD:
            out[f'x.after_{i}'] = x.clone()

    x = ddim_sample(unet, cond, uncond, noise, sched, STEPS, GUIDANCE, inspect=record)
    out[f'x_interval.after_{STEPS}'] = ddim_sample(unet, cond, uncond, noise, sched, STEPS, GUIDANCE,
                                                    guidance_below=GUIDANCE_BELOW)
    out['meta.guidance_below'] = torch.tensor([float(GUIDANCE_BELOW)])
    # A third: epsilon taken from the clipped x0 (sampling.json's recomputeEpsilon), full guidance.
    out[f'x_recompute.after_{STEPS}'] = ddim_sample(unet, cond, uncond, noise, sched, STEPS, GUIDANCE,
                                                     recompute_eps=True)
    # Euler ancestral from the same noise; its ancestral steps replay one recorded draw each (the last step has none).
    drawn = []

    def recorded_noise():
        drawn.append(step_noise())
        return drawn[-1]

    out[f'x_euler.after_{STEPS}'] = euler_a_sample(unet, cond, uncond, noise, sched, recorded_noise, STEPS, GUIDANCE)
    out['inputs.euler_step_noise'] = torch.cat(drawn)  # [STEPS - 1, 3, H, W]
    replay = iter(drawn)
    out[f'x_euler_clip.after_{STEPS}'] = euler_a_sample(unet, cond, uncond, noise, sched, lambda: next(replay), STEPS,
                                                        GUIDANCE, recompute_eps=True)
    out['meta.steps'] = torch.tensor([float(STEPS)])
    out['meta.guidance'] = torch.tensor([GUIDANCE])
    path = os.path.join(HERE, 'golden', 'emoji_tiny_ddim.safetensors')
    save_file({k: v.contiguous() for k, v in out.items()}, path,
              metadata={'steps': str(STEPS), 'guidance': str(GUIDANCE), 'record': ','.join(map(str, RECORD))})
    print('wrote', path, '| final x mean/std per channel:',
          [f'{m:.3f}/{s:.3f}' for m, s in zip(x[0].mean((1, 2)).tolist(), x[0].std((1, 2)).tolist())])


if __name__ == '__main__':
    use_openblas()
    main()
