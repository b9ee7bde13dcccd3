// Layers × rank positions, coloured by each position's contribution f(i)·‖B[:,i]‖·‖A[i,:]‖ (log scale);
// positions past the layer's rank D are dimmed. A scrubber steps back through stored snapshots; beside it
// the adapter's bytes against a fixed-rank LoRA at the same max rank. Drawn on canvas outside React.
import { useEffect, useRef, useState } from 'react';
import { formatBytes } from '../../train/sessionStore';
import { colormap, heatmapPixels, HEATMAP_DECADES } from '../heatmapScale';
import { metrics } from '../services';
import { BLOCK_LABEL, blockColor } from './chartTheme';

const GUTTER = 6;
const MIN_ROW = 3;

/** The layers' ranks at `step` (the last recorded step at or before it). */
function ranksAt(step: number): number[] {
  let lo = 0;
  let hi = metrics.steps.length - 1;
  let t = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (metrics.steps[mid] <= step) {
      t = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return metrics.ranks.map((r) => (t >= 0 ? r[t] : Number.NaN));
}

function legendGradient(): string {
  const stops = Array.from({ length: 9 }, (_, i) => `rgb(${colormap(i / 8).join(',')}) ${(i / 8) * 100}%`);
  return `linear-gradient(to right, ${stops.join(',')})`;
}

export function RankHeatmap() {
  const canvas = useRef<HTMLCanvasElement>(null);
  const tip = useRef<HTMLDivElement>(null);
  const slider = useRef<HTMLInputElement>(null);
  const stepLabel = useRef<HTMLSpanElement>(null);
  const bytes = useRef<HTMLDivElement>(null);
  const [live, setLive] = useState(true);
  const liveRef = useRef(true);
  const index = useRef(-1);

  useEffect(() => {
    const c = canvas.current!;
    // What the canvas shows; a redraw with the same snapshot, scale and width is skipped (the trainer
    // sends contributions only every few steps, the subscription fires at ~4 Hz).
    let shown: { snap?: object; max: number; width: number } = { max: 0, width: 0 };
    const setText = (el: HTMLElement, text: string) => {
      if (el.textContent !== text) el.textContent = text;
    };
    const setAttr = (el: HTMLElement, key: string, value: string) => {
      if (el.dataset[key] !== value) el.dataset[key] = value;
    };
    const draw = () => {
      const snaps = metrics.contributions;
      const s = slider.current!;
      if (s.max !== String(Math.max(0, snaps.length - 1))) s.max = String(Math.max(0, snaps.length - 1));
      s.disabled = snaps.length < 2;
      if (liveRef.current || index.current >= snaps.length) index.current = snaps.length - 1;
      if (s.value !== String(Math.max(0, index.current))) s.value = String(Math.max(0, index.current));
      const snap = snaps[index.current];
      setAttr(c, 'snapshots', String(snaps.length));
      drawBytes();
      const width = c.clientWidth;
      if (!snap || snap.rows.length === 0) {
        if (c.height !== 0) c.height = 0;
        setText(stepLabel.current!, 'no data yet');
        return;
      }
      setText(
        stepLabel.current!,
        `step ${snap.step}${index.current === snaps.length - 1 ? ' (latest)' : ''}`,
      );
      if (shown.snap === snap && shown.max === metrics.contributionMax && shown.width === width) return;
      shown = { snap, max: metrics.contributionMax, width };
      const ctx = c.getContext('2d')!;
      const rows = snap.rows.length;
      const cols = Math.max(1, ...snap.rows.map((r) => r.length));
      const rowH = Math.max(MIN_ROW, Math.floor(320 / rows));
      const height = rows * rowH;
      const dpr = devicePixelRatio || 1;
      // Assigning a canvas size reallocates it even when unchanged.
      if (c.width !== Math.round(width * dpr)) c.width = Math.round(width * dpr);
      if (c.height !== Math.round(height * dpr)) c.height = Math.round(height * dpr);
      if (c.style.height !== `${height}px`) c.style.height = `${height}px`;
      const cells = new ImageData(
        heatmapPixels(snap.rows, cols, metrics.contributionMax, ranksAt(snap.step)),
        cols,
        rows,
      );
      const small = new OffscreenCanvas(cols, rows);
      small.getContext('2d')!.putImageData(cells, 0, 0);
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.clearRect(0, 0, width, height);
      ctx.drawImage(small, GUTTER, 0, width - GUTTER, height);
      snap.rows.forEach((_, y) => {
        ctx.fillStyle = blockColor(metrics.layers[y]?.block ?? 'down');
        ctx.fillRect(0, y * rowH, GUTTER - 2, rowH);
      });
      setAttr(c, 'rows', String(rows));
      setAttr(c, 'cols', String(cols));
    };
    const drawBytes = () => {
      const el = bytes.current!;
      const a = metrics.adapterBytes;
      const f = metrics.fixedRankBytes;
      if (el.dataset.adapterBytes === String(a) && el.dataset.fixedBytes === String(f)) return;
      el.dataset.adapterBytes = String(a);
      el.dataset.fixedBytes = String(f);
      const pct = f > 0 ? Math.min(100, (100 * a) / f) : 0;
      el.querySelector<HTMLElement>('.bar.lora2 i')!.style.width = `${pct}%`;
      setText(el.querySelector('.v.lora2')!, a ? formatBytes(a) : '–');
      setText(el.querySelector('.v.fixed')!, f ? formatBytes(f) : '–');
      setText(el.querySelector('.saving')!, f > 0 && a > 0 ? `${(100 - pct).toFixed(0)} % smaller` : '');
    };
    const off = metrics.subscribe(draw);
    const redraw = () => draw();
    const ro = new ResizeObserver(redraw);
    ro.observe(c);
    const s = slider.current!;
    const onScrub = () => {
      index.current = Number(s.value);
      const latest = index.current >= metrics.contributions.length - 1;
      liveRef.current = latest;
      setLive(latest);
      draw();
    };
    s.addEventListener('input', onScrub);
    return () => {
      off();
      ro.disconnect();
      s.removeEventListener('input', onScrub);
    };
  }, []);

  const onMove = (e: React.MouseEvent<HTMLCanvasElement>) => {
    const c = canvas.current!;
    const t = tip.current!;
    const snap = metrics.contributions[index.current];
    if (!snap) return;
    const r = c.getBoundingClientRect();
    const rows = snap.rows.length;
    const cols = Number(c.dataset.cols);
    const y = Math.floor(((e.clientY - r.top) / r.height) * rows);
    const x = Math.floor(((e.clientX - r.left - GUTTER) / (r.width - GUTTER)) * cols);
    const row = snap.rows[y];
    const layer = metrics.layers[y];
    if (!row || !layer || x < 0 || x >= cols) {
      t.hidden = true;
      return;
    }
    const rank = ranksAt(snap.step)[y];
    const v = row[x];
    t.hidden = false;
    t.replaceChildren(
      Object.assign(document.createElement('b'), { textContent: layer.name }),
      Object.assign(document.createElement('span'), {
        textContent:
          x < row.length
            ? `position ${x} · contribution ${v > 0 ? v.toExponential(2) : '0'} · ${x < rank ? 'active' : 'masked'} (D = ${rank}, capacity ${row.length})`
            : `position ${x} · not allocated (capacity ${row.length})`,
      }),
    );
    t.style.left = `${Math.min(e.clientX - r.left + 12, r.width - 260)}px`;
    t.style.top = `${e.clientY - r.top + 12}px`;
  };

  return (
    <div className="heatmap-wrap">
      <div className="heatmap">
        <div className="heatmap-canvas">
          <canvas
            ref={canvas}
            data-testid="rank-heatmap"
            onMouseMove={onMove}
            onMouseLeave={() => (tip.current!.hidden = true)}
          />
          <div ref={tip} className="chart-tip" data-testid="heatmap-tooltip" hidden />
        </div>
        <p className="chart-empty heatmap-empty">
          Per-position contributions appear here once training starts.
        </p>
        <div className="scrubber">
          <input
            ref={slider}
            type="range"
            min={0}
            max={0}
            defaultValue={0}
            aria-label="Snapshot"
            data-testid="heatmap-scrubber"
          />
          <span ref={stepLabel} data-testid="heatmap-step" />
          <button
            className="ghost small"
            disabled={live}
            onClick={() => {
              const s = slider.current!;
              s.value = s.max;
              s.dispatchEvent(new Event('input'));
            }}
          >
            Live
          </button>
        </div>
        <div className="scale">
          <span>10⁻{HEATMAP_DECADES}× max</span>
          <i style={{ background: legendGradient() }} />
          <span>max</span>
          <span className="muted">
            rows: layers ({Object.values(BLOCK_LABEL).join(' → ')}) · columns: rank position i
          </span>
        </div>
      </div>
      <div className="bytes" ref={bytes} data-testid="adapter-bytes">
        <h3>Adapter size</h3>
        <div className="bar lora2">
          <i />
        </div>
        <p>
          LoRA² <span className="v lora2">–</span>
        </p>
        <div className="bar fixed">
          <i />
        </div>
        <p>
          fixed rank (max) <span className="v fixed">–</span>
        </p>
        <p className="saving" />
      </div>
    </div>
  );
}
