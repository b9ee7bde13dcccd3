"""Tables of dreambooth_lora.py runs from their logs: one row per run and one mean per method.

    /usr/bin/python3 tools/reference/summarize_runs.py OUT/lora2-s0.log OUT/r2-s0.log ... [--figure F.png --seed 0]

A log's name is METHOD-sSEED.log (e.g. r2-s1.log); what the script printed at the end of a run (adapter
parameters, the subject's rank, the other prompt's emoji rank, the mean |LoRA − base|) fills the row.
--figure stacks the runs of one seed from their METHOD-sSEED.png sheets (rows: photos, base "<v1> robot", LoRA,
base "cat face", LoRA): the photos, the base model on the first prompt, each method's LoRA on it (methods in the
order given), the base model on the second prompt, each method's LoRA on it.
"""
import argparse
import re
from collections import defaultdict
from pathlib import Path
from statistics import mean

PATTERNS = {
    'parameters': r'^adapter: (\d+) parameters',
    'subject': r'"<[^"]*": base [\d.]+ \[[^\]]*\], LoRA ([\d.]+) \[',
    'other_rank': r'emoji rank: base [\d.]+ \[[^\]]*\], LoRA ([\d.]+) \[',
    'moved': r'mean \|LoRA - base\| ([\d.]+) / 255',
}


def parse(path: Path) -> dict:
    text = path.read_text()
    row = {}
    for key, pattern in PATTERNS.items():
        m = re.search(pattern, text, re.M)
        if not m:
            raise SystemExit(f'{path}: no "{key}" line (did the run finish?)')
        row[key] = float(m.group(1))
    name = re.fullmatch(r'(.+)-s(\d+)', path.stem)
    if not name:
        raise SystemExit(f'{path}: expected a name like METHOD-sSEED.log')
    row['method'], row['seed'] = name.group(1), int(name.group(2))
    ranks = re.findall(r'ranks conv \[([^\]]*)\] attn \[([^\]]*)\]', text)
    if ranks:
        values = [int(v) for part in ranks[-1] for v in part.split(',') if v.strip()]
        row['ranks'] = f'{min(values)}–{max(values)}, mean {mean(values):.2f}'
    return row


def figure(logs: list, seed: int, out: str) -> None:
    from PIL import Image
    sheets = []
    for log in logs:
        p = Path(log)
        if p.stem.endswith(f'-s{seed}'):
            sheets.append(Image.open(p.with_suffix('.png')).convert('RGB'))
    if not sheets:
        raise SystemExit(f'no run of seed {seed} among the logs')
    w, h = sheets[0].size
    row = h // 5
    strip = lambda im, i: im.crop((0, i * row, w, (i + 1) * row))
    rows = [strip(sheets[0], 0), strip(sheets[0], 1), *(strip(s, 2) for s in sheets),
            strip(sheets[0], 3), *(strip(s, 4) for s in sheets)]
    fig = Image.new('RGB', (w, row * len(rows)), 'white')
    for i, r in enumerate(rows):
        fig.paste(r, (0, i * row))
    fig.save(out)
    print(f'wrote {out}: {len(rows)} rows')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('logs', nargs='+')
    ap.add_argument('--figure', default='')
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    if a.figure:
        figure(a.logs, a.seed, a.figure)
    rows = sorted((parse(Path(p)) for p in a.logs), key=lambda r: (r['method'], r['seed']))
    print('| method | seed | parameters | final ranks | subject rank (median of 4) | "cat face" emoji rank | mean \\|LoRA − base\\| |')
    print('|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['method']} | {r['seed']} | {int(r['parameters']):,} | {r.get('ranks', 'fixed')} | "
              f"{r['subject']:g} | {r['other_rank']:g} | {r['moved']:.1f} |")
    by = defaultdict(list)
    for r in rows:
        by[r['method']].append(r)
    print('\n| method | runs | mean parameters | mean subject rank | mean "cat face" emoji rank | mean \\|LoRA − base\\| |')
    print('|---|---|---|---|---|---|')
    for method, rs in by.items():
        print(f"| {method} | {len(rs)} | {mean(r['parameters'] for r in rs):,.0f} | "
              f"{mean(r['subject'] for r in rs):.1f} | {mean(r['other_rank'] for r in rs):.1f} | "
              f"{mean(r['moved'] for r in rs):.1f} |")


if __name__ == '__main__':
    main()
