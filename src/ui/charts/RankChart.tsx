// Each layer's effective rank D_ℓ over steps, one stepped line per layer coloured by UNet block; hovering
// near a line focuses it and names the layer and its rank at that step.
import uPlot from 'uplot';
import { indexAtStep, stepChanges } from '../metrics';
import { metrics } from '../services';
import { axes, BLOCK_LABEL, blockColor, layerColors } from './chartTheme';
import { LiveChart } from './LiveChart';

const signature = () => metrics.layers.map((l) => l.name).join('|');
// Only the steps where some rank changes: the stepped lines look the same, and redraws stay cheap on long runs.
const data = (): uPlot.AlignedData => stepChanges(metrics.steps, metrics.ranks) as uPlot.AlignedData;
const stepped = uPlot.paths.stepped!({ align: 1 });

function options(width: number, height: number): uPlot.Options {
  const colors = layerColors(metrics.layers);
  const tip = document.createElement('div');
  tip.className = 'chart-tip';
  tip.dataset.testid = 'rank-tooltip';
  tip.hidden = true;
  let focused: number | null = null;

  const update = (u: uPlot) => {
    const idx = u.cursor.idx;
    const left = u.cursor.left ?? -1;
    if (focused === null || focused < 1 || idx === null || idx === undefined || left < 0) {
      tip.hidden = true;
      return;
    }
    const layer = metrics.layers[focused - 1];
    // The chart holds only the steps where a rank changes; name the hovered step and read its rank from
    // the full history.
    const t = indexAtStep(metrics.steps, Math.round(u.posToVal(left, 'x')));
    const at = Math.max(0, t);
    const rank = metrics.ranks[focused - 1]?.[at];
    tip.hidden = false;
    tip.replaceChildren(
      Object.assign(document.createElement('b'), { textContent: layer.name }),
      Object.assign(document.createElement('span'), {
        textContent: `${BLOCK_LABEL[layer.block]} · step ${metrics.steps[at]} · rank ${rank ?? '–'}`,
      }),
    );
    tip.style.borderColor = colors[focused - 1];
    const w = u.over.clientWidth;
    tip.style.left = `${Math.min(left + 12, w - 260)}px`;
    tip.style.top = `${Math.max(0, (u.cursor.top ?? 0) - 40)}px`;
  };

  return {
    width,
    height,
    legend: { show: false },
    cursor: { focus: { prox: 24 }, drag: { x: true, y: false }, points: { show: false } },
    focus: { alpha: 0.2 },
    scales: { x: { time: false }, y: { range: (_u, _min, max) => [0, Math.max(4, Math.ceil(max) + 1)] } },
    axes: axes('rank D'),
    series: [
      { label: 'step' },
      ...metrics.layers.map((l, i) => ({
        label: l.name,
        stroke: colors[i],
        width: 1.25,
        points: { show: false },
        paths: stepped,
      })),
    ],
    hooks: {
      init: [(u) => void u.over.append(tip)],
      setSeries: [
        (u, sidx) => {
          focused = sidx;
          update(u);
        },
      ],
      setCursor: [update],
    },
  };
}

export function RankChart() {
  return (
    <LiveChart
      testId="rank-chart"
      height={240}
      empty="Each layer's rank appears here once training starts."
      signature={signature}
      options={options}
      data={data}
    >
      <ul className="block-legend">
        {(['down', 'mid', 'up'] as const).map((b) => (
          <li key={b}>
            <i style={{ background: blockColor(b) }} />
            {BLOCK_LABEL[b]}
          </li>
        ))}
      </ul>
    </LiveChart>
  );
}
