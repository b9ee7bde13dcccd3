// The progress bar while images render (the Generate tab, the Sessions tab's comparison): steps done of all
// and the time left from the steady pace.
import { formatDuration } from './metrics';

export function SamplingProgress(p: { step: number; total: number; etaMs?: number; testId: string }) {
  return (
    <div className="progress">
      <div className="track">
        <i style={{ width: `${p.total ? (100 * p.step) / p.total : 0}%` }} />
      </div>
      <div className="stats" data-testid={p.testId}>
        <span>
          step <b>{p.step}</b> / {p.total}
        </span>
        <span>
          {p.step === 0
            ? 'starting (a first image compiles the GPU shaders)…'
            : `ETA ${p.etaMs === undefined ? 'estimating…' : formatDuration(p.etaMs)}`}
        </span>
      </div>
    </div>
  );
}
