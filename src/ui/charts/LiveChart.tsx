// A uPlot chart fed from the metrics history: created once per layer set, then updated in place with
// setData at most ~4 Hz (the history's throttled subscription); React never re-renders it while training.
import { useEffect, useRef, type ReactNode } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { metrics } from '../services';

export interface LiveChartProps {
  testId: string;
  height: number;
  empty: string;
  /** Changes when the chart must be rebuilt (e.g. the set of layers). */
  signature: () => string;
  options: (width: number, height: number) => uPlot.Options;
  data: () => uPlot.AlignedData;
  children?: ReactNode;
}

export function LiveChart({ testId, height, empty, signature, options, data, children }: LiveChartProps) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current!;
    let chart: uPlot | undefined;
    let sig: string | undefined;
    let drawn = -1;
    const draw = () => {
      if (metrics.version === drawn && chart) return;
      drawn = metrics.version;
      const s = signature();
      if (!chart || s !== sig) {
        chart?.destroy();
        sig = s;
        chart = new uPlot(options(Math.max(200, el.clientWidth), height), data(), el);
      } else {
        chart.setData(data());
      }
      // Only on change: the attribute drives CSS (the empty-chart note), so each write restyles.
      if (el.dataset.points !== String(metrics.steps.length))
        el.dataset.points = String(metrics.steps.length);
    };
    const off = metrics.subscribe(draw);
    const ro = new ResizeObserver(() => chart?.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      off();
      ro.disconnect();
      chart?.destroy();
    };
  }, [signature, options, data, height]);
  return (
    <div className="live-chart">
      <div ref={box} className="chart" data-testid={testId} data-points="0" />
      <p className="chart-empty">{empty}</p>
      {children}
    </div>
  );
}
