// The Train tab: photos and settings on the left, progress and charts in the middle, previews on the right.
import { newSession, renameSession } from './actions/session';
import { LossChart } from './charts/LossChart';
import { RankChart } from './charts/RankChart';
import { RankHeatmap } from './charts/RankHeatmap';
import { ErrorBoundary } from './ErrorBoundary';
import { PhotosPanel } from './PhotosPanel';
import { SamplesPanel } from './SamplesPanel';
import { SettingsPanel } from './SettingsPanel';
import { useStudio } from './studioStore';
import { TrainControls } from './TrainControls';

function SessionTitle() {
  const session = useStudio((s) => s.session);
  return (
    <div className="session-title">
      <input
        key={`${session?.id}:${session?.name}`}
        defaultValue={session?.name ?? ''}
        aria-label="Session name"
        data-testid="session-name"
        onBlur={(e) => e.target.value !== session?.name && void renameSession(e.target.value)}
        onKeyDown={(e) => e.key === 'Enter' && (e.target as HTMLInputElement).blur()}
      />
      <button className="ghost small" onClick={() => void newSession()} data-testid="new-session">
        New
      </button>
    </div>
  );
}

const CHARTS = [
  { title: 'Loss', area: 'The loss chart', Chart: LossChart },
  { title: 'Rank per layer', area: 'The rank chart', Chart: RankChart },
  { title: 'Rank importance heatmap', area: 'The rank heatmap', Chart: RankHeatmap },
];

export function TrainView() {
  return (
    <div className="train-view" data-testid="train-view">
      <aside className="col left">
        <SessionTitle />
        <ErrorBoundary area="The photo panel">
          <PhotosPanel />
        </ErrorBoundary>
        <ErrorBoundary area="The settings panel">
          <SettingsPanel />
        </ErrorBoundary>
      </aside>
      <div className="col center">
        <ErrorBoundary area="The training controls">
          <TrainControls />
        </ErrorBoundary>
        {CHARTS.map(({ title, area, Chart }) => (
          <section className="panel" key={title}>
            <h2>{title}</h2>
            <ErrorBoundary area={area}>
              <Chart />
            </ErrorBoundary>
          </section>
        ))}
      </div>
      <aside className="col right">
        <ErrorBoundary area="The previews">
          <SamplesPanel />
        </ErrorBoundary>
      </aside>
    </div>
  );
}
