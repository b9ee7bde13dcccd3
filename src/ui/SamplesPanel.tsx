// Right column of the Train view: the previews sampled every N steps while training, newest first.
import { setTab, useStudio } from './studioStore';

export function SamplesPanel() {
  const samples = useStudio((s) => s.samples);
  const every = useStudio((s) => s.settings.previewEvery);
  const previews = samples.filter((s) => s.kind === 'preview').reverse();
  return (
    <section className="panel samples" data-testid="samples-panel">
      <h2>
        Previews <span className="count">{previews.length}</span>
      </h2>
      {previews.length === 0 ? (
        <p className="muted">
          {every > 0
            ? `A preview is sampled every ${every} steps while training.`
            : 'Previews are off (set “Preview every”).'}
        </p>
      ) : (
        <div className="sample-grid">
          {previews.map((s) => (
            <figure key={s.n} data-testid="preview-sample">
              <img src={s.url} alt={`${s.prompt} · step ${s.step}`} title={s.prompt} className="pixelated" />
              <figcaption>step {s.step}</figcaption>
            </figure>
          ))}
        </div>
      )}
      <button className="ghost small" onClick={() => setTab('generate')}>
        Generate images…
      </button>
    </section>
  );
}
