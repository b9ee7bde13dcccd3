// Training loss per step: the raw values (faint, noisy by nature of diffusion) and their moving average.
import type uPlot from 'uplot';
import { metrics } from '../services';
import { axes, lossTickFormat } from './chartTheme';
import { LiveChart } from './LiveChart';

const signature = () => 'loss';
const data = (): uPlot.AlignedData => [metrics.steps, metrics.loss, metrics.lossEma];
const options = (width: number, height: number): uPlot.Options => ({
  width,
  height,
  legend: { show: true, live: true },
  cursor: { drag: { x: true, y: false } },
  scales: { x: { time: false } },
  axes: axes('loss', lossTickFormat),
  series: [
    { label: 'step' },
    { label: 'loss', stroke: 'rgba(124,156,255,0.35)', width: 1, points: { show: false } },
    { label: 'average', stroke: '#7c9cff', width: 2, points: { show: false } },
  ],
});

export function LossChart() {
  return (
    <LiveChart
      testId="loss-chart"
      height={180}
      empty="The loss appears here once training starts."
      signature={signature}
      options={options}
      data={data}
    />
  );
}
