"""Builds the pretraining corpus of the embedded default model: Google + Twitter emoji, 32×32 RGB on white.

Writes tools/reference/.data/corpus.npz (images uint8 [N,32,32,3], not committed), tools/reference/corpus.json
(settings, per-item prompts, held-out designs) and tools/reference/holdout.json (the personalization subjects).
Usage: python3 tools/reference/prepare_corpus.py
"""

import json
import os
import re

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
NM = os.path.join(ROOT, 'node_modules')
DATA = os.path.join(HERE, '.data')

VENDORS = {
    'google': ('emoji-datasource-google', 'img/google/64', 'Apache-2.0'),
    'twitter': ('emoji-datasource-twitter', 'img/twitter/64', 'CC-BY-4.0'),
}
SIZE = 32
# Held out of pretraining so that personalization has subjects the base model never saw (both vendors' designs).
HOLDOUT = {
    '1F984': 'unicorn',
    '1F996': 'T-Rex',
    '1F9F8': 'teddy bear',
    '1F916': 'robot',
    '1F419': 'octopus',
    '1F335': 'cactus',
}


def norm_code(code):
    """Hex code without variation selectors, upper-case, so emojibase and emoji-datasource keys meet."""
    return '-'.join(p for p in code.upper().split('-') if p != 'FE0F')


def words(text):
    return [w for w in re.split(r'[^a-z0-9]+', text.lower()) if w]


def load_emojibase():
    with open(os.path.join(NM, 'emojibase-data', 'en', 'data.json')) as f:
        data = json.load(f)
    return {norm_code(e['hexcode']): e for e in data}


def to_rgb32(path):
    """RGBA 64×64 composited on white, box-filtered to 32×32 (an exact 2×2 average)."""
    im = Image.open(path).convert('RGBA')
    bg = Image.new('RGBA', im.size, (255, 255, 255, 255))
    im = Image.alpha_composite(bg, im).convert('RGB')
    if im.size != (64, 64):
        im = im.resize((64, 64), Image.BOX)
    return np.asarray(im.resize((SIZE, SIZE), Image.BOX), dtype=np.uint8)


def main():
    base = load_emojibase()
    items, images, held = [], [], []
    skipped = {'no_image': 0, 'no_label': 0, 'skin_variants_dropped': 0}
    for vendor, (pkg, imgdir, _lic) in VENDORS.items():
        with open(os.path.join(NM, pkg, 'emoji.json')) as f:
            entries = json.load(f)
        for e in sorted(entries, key=lambda e: e['sort_order']):
            skipped['skin_variants_dropped'] += len(e.get('skin_variations', {}))
            path = os.path.join(NM, pkg, imgdir, e['image'])
            if not e.get('has_img_' + vendor) or not os.path.exists(path):
                skipped['no_image'] += 1
                continue
            eb = base.get(norm_code(e['unified']))
            if eb is None:
                skipped['no_label'] += 1
                continue
            rec = {
                'vendor': vendor,
                'code': e['unified'],
                'image': os.path.relpath(path, ROOT),
                'label': eb['label'].lower(),
                'short_names': [s.replace('_', ' ').replace('-', ' ') for s in e['short_names']],
                'tags': eb.get('tags', []),
                'category': e['category'],
            }
            if norm_code(e['unified']) in HOLDOUT:
                held.append(rec)
                continue
            items.append(rec)
            images.append(to_rgb32(path))
    images = np.stack(images)
    os.makedirs(DATA, exist_ok=True)
    np.savez_compressed(os.path.join(DATA, 'corpus.npz'), images=images)
    settings = {
        'size': SIZE,
        'background': 'white (alpha composited)',
        'resample': '64x64 -> 32x32 box filter (2x2 mean)',
        'vendors': {k: {'package': v[0], 'dir': v[1], 'image_license': v[2]} for k, v in VENDORS.items()},
        'labels': 'emojibase-data/en/data.json (label, tags) joined on hexcode without FE0F; short_names from emoji.json',
        'skin_tones': 'skin-tone variants dropped (only the default yellow design of each emoji is used)',
        'holdout_codes': HOLDOUT,
        'count': len(items),
        'per_vendor': {v: sum(1 for it in items if it['vendor'] == v) for v in VENDORS},
        'skipped': skipped,
        'prompt_sampling': 'train_default.py: label 60%, a short name 20%, 1-3 random tags 20%',
    }
    with open(os.path.join(HERE, 'corpus.json'), 'w') as f:
        json.dump({'settings': settings, 'items': items}, f, indent=0)
    with open(os.path.join(HERE, 'holdout.json'), 'w') as f:
        json.dump({'about': 'Emoji designs held out of pretraining (personalization subjects).', 'items': held},
                  f, indent=1)
    print(json.dumps(settings, indent=1))


if __name__ == '__main__':
    main()
