"""Picture of a training run's per-layer ranks over the steps, from `npm run train`'s report.json (PIL only).

    /usr/bin/python3 tools/reference/plot_ranks.py out/run/report.json docs/ranks.png

One column per step; each column stacks the layers by their rank at that step (colour = rank), so the picture
shows how many layers hold each rank over the run. A legend on the right gives the final count per rank.
"""
import json
import sys
from collections import Counter

from PIL import Image, ImageDraw

COLOURS = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37), (230, 120, 30), (200, 40, 40)]


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: plot_ranks.py REPORT.json OUT.png')
    report = json.load(open(sys.argv[1]))
    history = report['rankHistory']
    if not history:
        sys.exit(f'{sys.argv[1]}: no rankHistory')
    ranks = sorted({r for step in history for r in step})
    colour = {r: COLOURS[i % len(COLOURS)] for i, r in enumerate(ranks)}
    n_layers = len(history[0])
    col_w, height, left, bottom, legend = 1, 156, 44, 22, 150
    width = left + col_w * len(history) + legend
    img = Image.new('RGB', (width, height + bottom + 8), 'white')
    draw = ImageDraw.Draw(img)
    for s, step in enumerate(history):
        y = height
        for r in ranks:
            h = round(height * sum(1 for v in step if v == r) / n_layers)
            if h:
                draw.rectangle([left + s * col_w, y - h + 1, left + (s + 1) * col_w - 1, y], fill=colour[r])
            y -= h
    draw.text((2, 0), f'{n_layers}', fill='black')
    draw.text((2, height - 10), '0', fill='black')
    draw.text((2, height // 2 - 5), 'layers', fill='black')
    for s in range(0, len(history) + 1, 100):
        x = left + s * col_w
        draw.line([x, height + 1, x, height + 4], fill='black')
        draw.text((x - 8, height + 6), str(s), fill='black')
    draw.text((left + len(history) * col_w // 2 - 10, height + 6 + 10), 'step', fill='black')
    final = Counter(history[-1])
    x0 = left + col_w * len(history) + 10
    for i, r in enumerate(reversed(ranks)):
        y = 8 + i * 16
        draw.rectangle([x0, y, x0 + 10, y + 10], fill=colour[r])
        draw.text((x0 + 16, y), f'rank {r}: {final.get(r, 0)} at end', fill='black')
    img.save(sys.argv[2])
    print(f'wrote {sys.argv[2]}: {len(history)} steps, {n_layers} layers, ranks {ranks}')


if __name__ == '__main__':
    main()
