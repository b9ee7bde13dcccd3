// The Sessions tab's comparison of the ticked sessions (a LoRA² run against a fixed-rank one on the same photos,
// or two LoRA² settings): a table of what each run ended with, its loss and mean rank over steps on shared
// axes, and one prompt rendered at the same seeds with the base model and with each session's LoRA.
import { useEffect, useRef, useState } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { downloadCompareGrid, loadCompare, renderBlocker, renderCompare } from './actions/compare';
import { axes, lossTickFormat } from './charts/chartTheme';
import {
  alignSeries,
  COMPARE_COLORS,
  compareCaveats,
  meanRanks,
  parseSeeds,
  smoothedLoss,
  summarize,
  type CompareEntry,
} from './compare';
import { ErrorBox } from './ErrorBox';
import { SamplingProgress } from './SamplingProgress';
import { TableHead } from './tableParts';
import { formatBytes } from '../train/sessionStore';
import { useStudio } from './studioStore';

const number = (v: number | undefined, digits: number) => (v === undefined ? '–' : v.toFixed(digits));

/** One line per session on a shared step axis, drawn once per change of the data (nothing here is live). */
function CompareChart(props: {
  testId: string;
  label: string;
  axisLabel: string;
  entries: CompareEntry[];
  values: (e: CompareEntry) => number[];
  format?: (v: number) => string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const { entries, values, axisLabel, format } = props;
  useEffect(() => {
    const el = box.current!;
    const data = alignSeries(
      entries.map((e) => ({ steps: e.history?.steps ?? [], values: e.history ? values(e) : [] })),
    );
    el.dataset.points = String(data[0].length);
    el.dataset.series = String(entries.length);
    const chart = new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height: 170,
        legend: { show: false },
        cursor: { drag: { x: true, y: false } },
        scales: { x: { time: false } },
        axes: axes(axisLabel, format),
        series: [
          { label: 'step' },
          ...entries.map((e, i) => ({
            label: e.session.name,
            stroke: COMPARE_COLORS[i % COMPARE_COLORS.length],
            width: 2,
            spanGaps: true,
            points: { show: false },
          })),
        ],
      },
      data as uPlot.AlignedData,
      el,
    );
    const ro = new ResizeObserver(() => chart.setSize({ width: Math.max(200, el.clientWidth), height: 170 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      chart.destroy();
    };
  }, [entries, values, axisLabel, format]);
  return (
    <figure className="compare-chart">
      <figcaption className="muted small">{props.label}</figcaption>
      <div ref={box} className="chart" data-testid={props.testId} data-points="0" />
    </figure>
  );
}

const lossValues = (e: CompareEntry) => smoothedLoss(e.history!);
const rankValues = (e: CompareEntry) => meanRanks(e.history!);

function SummaryTable({ entries }: { entries: CompareEntry[] }) {
  const rows = entries.map(summarize);
  const smallest = Math.min(...rows.map((r) => r.adapterBytes ?? Infinity));
  return (
    <table className="sessions compare-table">
      <TableHead
        columns={['Session', 'Mode', 'Steps', 'Photos', 'Final loss', 'Rank min / mean / max', 'Adapter', '']}
      />
      <tbody>
        {rows.map((r, i) => (
          <tr key={r.id} data-testid="compare-row" data-session={r.id}>
            <td>
              <i className="swatch" style={{ background: COMPARE_COLORS[i % COMPARE_COLORS.length] }} />
              <b>{r.name}</b>
            </td>
            <td>{r.mode}</td>
            <td>
              {r.step} / {r.totalSteps}
            </td>
            <td>{r.photos}</td>
            <td data-testid="compare-loss" title="Mean loss over the last quarter of the recorded steps">
              {number(r.finalLoss, 4)}
            </td>
            <td data-testid="compare-ranks">
              {r.ranks ? `${r.ranks.min} / ${r.ranks.mean.toFixed(1)} / ${r.ranks.max}` : '–'}
            </td>
            <td data-testid="compare-bytes">
              {r.adapterBytes === undefined ? '–' : formatBytes(r.adapterBytes)}
              {r.adapterBytes !== undefined && r.fixedRankBytes !== undefined ? (
                <div className="muted small">fixed rank at max: {formatBytes(r.fixedRankBytes)}</div>
              ) : null}
            </td>
            <td className="muted small">
              {r.adapterBytes !== undefined && rows.length > 1 && r.adapterBytes >= 1.05 * smallest
                ? `${(r.adapterBytes / smallest).toFixed(1)}× the smallest`
                : ''}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RenderSection({ entries }: { entries: CompareEntry[] }) {
  const render = useStudio((s) => s.compare.render);
  const sampling = useStudio((s) => s.model.info?.sampling);
  // Re-read when anything it depends on changes.
  const blocker = useStudio(() => renderBlocker());
  const [prompt, setPrompt] = useState(entries[0]?.session.settings.prompt ?? '');
  const [seedsText, setSeedsText] = useState('1, 2');
  const [steps, setSteps] = useState<number | undefined>(undefined);
  const seeds = parseSeeds(seedsText);
  const stepsValue = steps ?? sampling?.steps ?? 25;
  const stepsOk = Number.isInteger(stepsValue) && stepsValue >= 1 && stepsValue <= 200;
  const ready = !blocker && typeof seeds !== 'string' && stepsOk && prompt.trim() !== '';
  const cellsDone = render.cells.flat().filter(Boolean).length;
  return (
    <div className="compare-render">
      <h3>Same prompt, same seeds</h3>
      <div className="compare-form">
        <label className="field grow">
          <span className="label">Prompt (with the identifier the sessions trained)</span>
          <input data-testid="compare-prompt" value={prompt} onChange={(e) => setPrompt(e.target.value)} />
        </label>
        <label className="field">
          <span className="label">Seeds</span>
          <input
            data-testid="compare-seeds"
            value={seedsText}
            onChange={(e) => setSeedsText(e.target.value)}
          />
        </label>
        <label className="field narrow">
          <span className="label">Steps</span>
          <input
            data-testid="compare-steps"
            type="number"
            min={1}
            max={200}
            value={stepsValue}
            onChange={(e) => setSteps(Number(e.target.value))}
          />
        </label>
        <button
          data-testid="compare-render"
          disabled={!ready}
          onClick={() =>
            typeof seeds !== 'string' &&
            void renderCompare({
              prompt: prompt.trim(),
              seeds,
              steps: stepsValue,
              guidance: sampling?.guidance ?? 5,
            })
          }
        >
          Render
        </button>
      </div>
      <p className="hint" data-testid="compare-render-hint">
        {typeof seeds === 'string'
          ? seeds
          : !stepsOk
            ? 'Steps: a whole number from 1 to 200.'
            : (blocker ??
              `${seeds.length} seed${seeds.length > 1 ? 's' : ''} × ${entries.length + 1} columns (the base model, then each session's LoRA at strength 1), DDIM at the model's guidance ${sampling?.guidance ?? 5}.`)}
      </p>
      {render.busy ? (
        <SamplingProgress
          step={render.step}
          total={render.total}
          etaMs={render.etaMs}
          testId="compare-progress"
        />
      ) : null}
      {render.error ? <ErrorBox error={render.error} testId="compare-error" /> : null}
      {render.cells.length ? (
        <>
          <table className="compare-grid" data-testid="compare-grid">
            <thead>
              <tr>
                <th />
                {render.columns.map((c, i) => (
                  <th key={i}>
                    {i > 0 ? (
                      <i
                        className="swatch"
                        style={{ background: COMPARE_COLORS[(i - 1) % COMPARE_COLORS.length] }}
                      />
                    ) : null}
                    {c.label}
                    {c.detail ? <div className="muted small">{c.detail}</div> : null}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {render.cells.map((row, r) => (
                <tr key={r}>
                  <th className="muted small">seed {render.seeds[r]}</th>
                  {row.map((url, c) => (
                    <td key={c}>
                      {url ? (
                        <img
                          src={url}
                          className="pixelated"
                          data-testid="compare-cell"
                          alt={`${render.prompt} · seed ${render.seeds[r]} · ${render.columns[c].label}`}
                        />
                      ) : (
                        <div className="compare-pending" />
                      )}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
          {!render.busy && cellsDone === render.seeds.length * render.columns.length ? (
            <button
              className="ghost"
              data-testid="compare-download"
              onClick={() => void downloadCompareGrid()}
            >
              Download the grid (PNG)
            </button>
          ) : null}
        </>
      ) : null}
    </div>
  );
}

export function CompareView() {
  const compare = useStudio((s) => s.compare);
  const sessionsVersion = useStudio((s) => s.sessions.items);
  // The list changed (a run saved its history, a session was deleted): read the picked sessions again.
  useEffect(() => {
    if (useStudio.getState().compare.ids.length) void loadCompare();
  }, [sessionsVersion]);
  if (compare.ids.length === 0) return null;
  const { entries } = compare;
  const caveats = compareCaveats(entries);
  const charted = entries.some((e) => e.history && e.history.steps.length > 0);
  return (
    <section className="panel compare" data-testid="compare">
      <div className="row">
        <h2>Compare</h2>
        <span className="muted small">
          {entries.length} session{entries.length === 1 ? '' : 's'}
          {entries.length < 2 ? ' · tick another one to compare' : ''}
        </span>
      </div>
      {compare.error ? <ErrorBox error={compare.error} testId="compare-load-error" /> : null}
      {caveats.length ? (
        <ul className="hint warning compare-caveats" data-testid="compare-caveats">
          {caveats.map((c) => (
            <li key={c}>{c}</li>
          ))}
        </ul>
      ) : null}
      {entries.length ? <SummaryTable entries={entries} /> : null}
      {charted ? (
        <div className="compare-charts">
          <CompareChart
            testId="compare-loss-chart"
            label="Loss (moving average, as on the Train tab)"
            axisLabel="loss"
            entries={entries}
            values={lossValues}
            format={lossTickFormat}
          />
          <CompareChart
            testId="compare-rank-chart"
            label="Mean rank over the layers"
            axisLabel="mean D"
            entries={entries}
            values={rankValues}
          />
        </div>
      ) : null}
      {entries.length ? (
        <RenderSection key={entries.map((e) => e.session.id).join('|')} entries={entries} />
      ) : null}
    </section>
  );
}
