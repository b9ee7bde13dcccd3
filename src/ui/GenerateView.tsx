// Generate: prompt, seed, steps, guidance, LoRA strength and sampler; the session's LoRA or the base
// model; every image is kept in the session's gallery in IndexedDB.
import { useState } from 'react';
import type { GenerateRequest } from '../../workers/api';
import { BUILT_IN_SAMPLING } from '../models/sampling';
import { generateImage, MAX_IMAGES, removeSample } from './actions/generate';
import { fileStem } from './actions/session';
import { saveBlob } from './download';
import { ErrorBox } from './ErrorBox';
import { SamplingProgress } from './SamplingProgress';
import { describeError, TrainerMissingError } from './errorText';
import { isTraining, useStudio, type SampleItem } from './studioStore';

function Field({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <label className="field">
      <span className="label">{label}</span>
      {children}
    </label>
  );
}

export function GenerateView() {
  const session = useStudio((s) => s.session);
  const caps = useStudio((s) => s.caps);
  const gen = useStudio((s) => s.generating);
  const samples = useStudio((s) => s.samples);
  const training = useStudio((s) => isTraining(s.train.phase));
  const steps = session?.step ?? 0;
  const adapterReady = useStudio((s) => s.adapterReady);
  const trained = steps > 0 || adapterReady;
  // The model's recommended guidance and steps (its sampling.json): a well-trained model wants far less guidance
  // than one whose prompts barely bite.
  const sampling = useStudio((s) => s.model.info?.sampling);
  const [form, setForm] = useState(() => ({
    prompt: session?.settings.prompt ?? '',
    negativePrompt: '',
    seed: 0,
    steps: (sampling ?? BUILT_IN_SAMPLING).steps,
    guidance: (sampling ?? BUILT_IN_SAMPLING).guidance,
    guidanceBelow: '',
    recomputeEpsilon: (sampling ?? BUILT_IN_SAMPLING).recomputeEpsilon,
    loraStrength: 1,
    sampler: 'ddim' as GenerateRequest['sampler'],
    useLora: true,
    compare: false,
    count: 1,
  }));
  const set = (patch: Partial<typeof form>) => setForm((f) => ({ ...f, ...patch }));
  // A model loaded after the form was made (or another model): start from its recommendation. Adjusted while
  // rendering, as React advises for state derived from a changed input.
  const samplingKey = sampling ? `${sampling.guidance}/${sampling.steps}/${sampling.recomputeEpsilon}` : '';
  const [formFor, setFormFor] = useState(samplingKey);
  if (samplingKey !== formFor) {
    setFormFor(samplingKey);
    if (sampling)
      setForm((f) => ({
        ...f,
        guidance: sampling.guidance,
        steps: sampling.steps,
        recomputeEpsilon: sampling.recomputeEpsilon,
      }));
  }
  const canGenerate = caps?.has('generate') ?? false;
  const latest = (gen.latest ?? [])
    .map((n) => samples.find((s) => s.n === n))
    .filter((s): s is SampleItem => s !== undefined);
  const withLora = form.useLora && trained;
  // Before/after pairs in the last result: each image says which side it is.
  const pairs =
    latest.some((s) => s.request?.sessionId) && latest.some((s) => s.request && !s.request.sessionId);
  const gallery = [...samples].reverse();

  const submit = () =>
    void generateImage(
      {
        prompt: form.prompt,
        negativePrompt: form.negativePrompt || undefined,
        seed: form.seed,
        steps: form.steps,
        guidance: form.guidance,
        guidanceBelow: form.guidanceBelow ? Number(form.guidanceBelow) : undefined,
        sampler: form.sampler,
        recomputeEpsilon: form.recomputeEpsilon,
        sessionId: withLora ? session?.id : undefined,
        loraStrength: form.useLora ? form.loraStrength : 0,
      },
      { compare: withLora && form.compare, count: form.count },
    );

  return (
    <div className="generate-view" data-testid="generate-view">
      <section className="panel gen-form">
        <h2>Generate</h2>
        <Field label="Prompt">
          <textarea
            rows={2}
            value={form.prompt}
            data-testid="gen-prompt"
            onChange={(e) => set({ prompt: e.target.value })}
          />
        </Field>
        <Field label="Negative prompt">
          <input
            type="text"
            value={form.negativePrompt}
            onChange={(e) => set({ negativePrompt: e.target.value })}
          />
        </Field>
        <div className="grid2">
          <Field label="Seed">
            <span className="with-button">
              <input
                type="number"
                value={form.seed}
                data-testid="gen-seed"
                onChange={(e) => set({ seed: Math.max(0, Math.floor(Number(e.target.value) || 0)) })}
              />
              <button
                className="ghost small"
                title="Random seed"
                onClick={() => set({ seed: Math.floor(Math.random() * 2 ** 31) })}
              >
                Random
              </button>
            </span>
          </Field>
          <Field label="Steps">
            <input
              type="number"
              min={1}
              max={200}
              value={form.steps}
              data-testid="gen-steps"
              onChange={(e) => set({ steps: Math.max(1, Math.floor(Number(e.target.value) || 1)) })}
            />
          </Field>
          <Field
            label={form.count > 1 ? `Images (seeds ${form.seed}–${form.seed + form.count - 1})` : 'Images'}
          >
            <input
              type="number"
              min={1}
              max={MAX_IMAGES}
              value={form.count}
              data-testid="gen-count"
              onChange={(e) =>
                set({ count: Math.min(MAX_IMAGES, Math.max(1, Math.floor(Number(e.target.value) || 1))) })
              }
            />
          </Field>
          <Field
            label={
              `Guidance ${form.guidance.toFixed(1)}` +
              (sampling?.source === 'sampling.json' && sampling.guidance !== form.guidance
                ? ` (model's: ${sampling.guidance})`
                : '')
            }
          >
            <input
              type="range"
              data-testid="gen-guidance"
              min={1}
              max={15}
              step={0.5}
              value={form.guidance}
              onChange={(e) => set({ guidance: Number(e.target.value) })}
            />
          </Field>
          <Field label="Guide at">
            <select
              value={form.guidanceBelow}
              data-testid="gen-guidance-below"
              title="Guidance only at the less noisy steps: cleaner backgrounds and shapes on the default model"
              onChange={(e) => set({ guidanceBelow: e.target.value })}
            >
              <option value="">every step</option>
              <option value="700">t ≤ 700</option>
              <option value="500">t ≤ 500</option>
            </select>
          </Field>
          <Field label="Sampler">
            <select
              value={form.sampler}
              onChange={(e) => set({ sampler: e.target.value as GenerateRequest['sampler'] })}
            >
              <option value="ddim">DDIM</option>
              <option value="euler-a">Euler ancestral</option>
            </select>
          </Field>
          <Field label="x₀ clip">
            <select
              value={form.recomputeEpsilon ? 'recompute' : 'keep'}
              data-testid="gen-clip-eps"
              title={
                'For a model that clips its x₀ prediction (the default model): take ε from the clipped x₀, or keep ' +
                'the model’s ε as diffusers does (its Euler sampler does not clip at all). Kept ε drifts to ' +
                'full-bleed colour at high guidance. No effect on a model that does not clip (SD-class).' +
                (sampling?.source === 'sampling.json'
                  ? ` The model recommends ${sampling.recomputeEpsilon ? 'recomputing' : 'keeping'} it.`
                  : '')
              }
              onChange={(e) => set({ recomputeEpsilon: e.target.value === 'recompute' })}
            >
              <option value="recompute">ε from clipped x₀</option>
              <option value="keep">ε kept (diffusers)</option>
            </select>
          </Field>
        </div>
        <label className="switch">
          <input
            type="checkbox"
            checked={form.useLora && trained}
            disabled={!trained}
            data-testid="gen-use-lora"
            onChange={(e) => set({ useLora: e.target.checked })}
          />
          <span className="track" />
          <span>
            Use this session’s LoRA{' '}
            <small>
              {steps > 0
                ? `trained to step ${steps}`
                : trained
                  ? 'imported from a LoRA file'
                  : 'not trained yet: base model'}
            </small>
          </span>
        </label>
        <Field label={`LoRA strength ${form.loraStrength.toFixed(2)}`}>
          <input
            type="range"
            min={0}
            max={1.5}
            step={0.05}
            value={form.loraStrength}
            disabled={!form.useLora || !trained}
            onChange={(e) => set({ loraStrength: Number(e.target.value) })}
          />
        </Field>
        <label className="switch">
          <input
            type="checkbox"
            checked={withLora && form.compare}
            disabled={!withLora}
            data-testid="gen-compare"
            onChange={(e) => set({ compare: e.target.checked })}
          />
          <span className="track" />
          <span>
            Before / after <small>also render the base model with the same seed</small>
          </span>
        </label>
        <button
          className="primary"
          onClick={submit}
          disabled={!canGenerate || gen.busy || training || !form.prompt.trim()}
          data-testid="generate"
        >
          {gen.busy ? `Sampling ${gen.step}/${gen.total}…` : 'Generate'}
        </button>
        {training ? <p className="hint warning">The GPU is busy training; pause to generate.</p> : null}
        {caps && !canGenerate ? (
          <ErrorBox
            tone="info"
            testId="generate-unavailable"
            error={describeError(new TrainerMissingError('generate'))}
          />
        ) : null}
        {gen.error ? <ErrorBox error={gen.error} testId="generate-error" /> : null}
      </section>
      <section className="panel gen-result">
        {gen.busy ? (
          <SamplingProgress step={gen.step} total={gen.total} etaMs={gen.etaMs} testId="gen-progress" />
        ) : null}
        {latest.length ? (
          <div className={latest.length > 1 ? 'result-pair' : undefined} data-testid="gen-result">
            {latest.map((s) => (
              <figure className="result" key={s.n}>
                <img src={s.url} alt={s.prompt} className="pixelated" />
                <figcaption>
                  {pairs ? <strong>{s.request?.sessionId ? 'With the LoRA' : 'Base model'} · </strong> : null}
                  {caption(s)}
                </figcaption>
              </figure>
            ))}
          </div>
        ) : (
          <p className="muted">Your image appears here.</p>
        )}
      </section>
      <section className="panel gallery" data-testid="gallery">
        <h2>
          Gallery <span className="count">{gallery.length}</span>
        </h2>
        {gallery.length === 0 ? (
          <p className="muted">Generated images and training previews of this session are kept here.</p>
        ) : null}
        <div className="sample-grid large">
          {gallery.map((s) => (
            <figure key={s.n} data-testid="gallery-item">
              <img src={s.url} alt={s.prompt} className="pixelated" />
              <figcaption>{caption(s)}</figcaption>
              <div className="actions">
                <button
                  className="icon"
                  title="Download PNG"
                  onClick={() => saveBlob(s.blob, `${fileStem(s.prompt || 'sample')}-${s.n}.png`)}
                >
                  ⤓
                </button>
                <button
                  className="icon"
                  title="Delete"
                  aria-label="Delete sample"
                  onClick={() => void removeSample(s.n)}
                >
                  ×
                </button>
              </div>
            </figure>
          ))}
        </div>
      </section>
    </div>
  );
}

function caption(s: SampleItem): string {
  if (s.kind === 'preview') return `preview · step ${s.step}`;
  const r = s.request;
  return r
    ? `${r.prompt} · seed ${r.seed} · ${r.steps} steps · ${r.sampler} · guidance ${r.guidance}` +
        (r.guidanceBelow !== undefined ? ` · guided at t ≤ ${r.guidanceBelow}` : '') +
        (r.recomputeEpsilon ? ' · ε from clipped x₀' : '') +
        (r.sessionId ? ` · LoRA ${r.loraStrength}` : '')
    : s.prompt;
}
