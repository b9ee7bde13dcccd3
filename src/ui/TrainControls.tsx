// Start / Pause / Resume / Stop, the progress bar (step, it/s, ETA), the resume offer after a reload or a
// lost device, training errors, and the LoRA export/import buttons.
import { useEffect, useRef, useState } from 'react';
import {
  dismissResume,
  exportLora,
  importLora,
  pauseTraining,
  startTraining,
  stopTraining,
  trainAgain,
} from './actions/training';
import { equalSizeRank } from './compare';
import { ErrorBox } from './ErrorBox';
import { describeError, TrainerMissingError } from './errorText';
import { etaLabel, itPerSec } from './metrics';
import { metrics } from './services';
import { isTraining, useStudio } from './studioStore';

/** Redrawn from the metrics subscription (~4 Hz), not from the store. */
function ProgressBar() {
  const [p, setP] = useState(metrics.latest);
  const steps = useStudio((s) => s.settings.steps);
  useEffect(() => metrics.subscribe(() => setP(metrics.latest ? { ...metrics.latest } : undefined)), []);
  const total = p?.total || steps;
  const step = p?.step ?? 0;
  const pct = total ? Math.min(100, (100 * step) / total) : 0;
  return (
    <div className="progress" data-testid="progress" data-step={step} data-total={total}>
      <div className="track">
        <i style={{ width: `${pct}%` }} />
      </div>
      <div className="stats">
        <span>
          step <b>{step}</b> / {total}
        </span>
        <span>{p ? `${itPerSec(p.stepMs).toFixed(2)} it/s` : '– it/s'}</span>
        <span title="From the recent steps' pace, without those that compiled GPU pipelines; previews included">
          ETA {etaLabel(p)}
        </span>
        <span>loss {p && Number.isFinite(p.loss) ? p.loss.toFixed(4) : '–'}</span>
        {p?.peakGpuBytes ? <span>GPU peak {(p.peakGpuBytes / 2 ** 20).toFixed(0)} MB</span> : null}
      </div>
    </div>
  );
}

export function TrainControls() {
  const train = useStudio((s) => s.train);
  const caps = useStudio((s) => s.caps);
  const model = useStudio((s) => s.model);
  const resume = useStudio((s) => s.resumeOffer);
  const session = useStudio((s) => s.session);
  const loraFile = useRef<HTMLInputElement>(null);
  const phase = train.phase;
  const running = isTraining(phase);
  const canTrain = caps?.has('startTraining') ?? false;
  const canResume = session && (phase === 'paused' || (phase === 'error' && resume));
  const finished = phase === 'done' || phase === 'stopped';
  // A finished LoRA² run offers its fixed-rank twin at the same adapter size (the fair baseline).
  const settings = useStudio((s) => s.settings);
  // (The sizes the history holds: the last run's, or the stored run's after a reload.)
  const twinRank =
    settings.mode === 'lora2'
      ? equalSizeRank(metrics.adapterBytes, metrics.fixedRankBytes, settings.maxRank)
      : undefined;

  return (
    <section className="panel controls" data-testid="train-controls" data-phase={phase}>
      <div className="row">
        {phase === 'running' || phase === 'pausing' || phase === 'stopping' ? (
          <>
            <button onClick={() => void pauseTraining()} disabled={phase !== 'running'} data-testid="pause">
              {phase === 'pausing' ? 'Pausing…' : 'Pause'}
            </button>
            <button
              className="danger"
              onClick={() => void stopTraining()}
              disabled={phase === 'stopping'}
              data-testid="stop"
            >
              {phase === 'stopping' ? 'Stopping…' : 'Stop'}
            </button>
          </>
        ) : canResume ? (
          <>
            <button className="primary" onClick={() => void startTraining()} data-testid="resume">
              Resume training
            </button>
            <button
              className="danger"
              onClick={() => void stopTraining()}
              data-testid="stop"
              title="End this run; it can no longer be resumed"
            >
              Stop
            </button>
          </>
        ) : finished ? (
          <>
            <button onClick={() => void trainAgain()} data-testid="train-again">
              Train again in a new session
            </button>
            {twinRank !== undefined ? (
              <button
                className="ghost"
                onClick={() => void trainAgain({ fixedRank: twinRank })}
                data-testid="train-twin"
                title={
                  `A new session with these photos and settings as a fixed-rank LoRA of the size this run's adapter ` +
                  `ended at (rank ${twinRank}), ticked beside it in the Sessions tab's Compare`
                }
              >
                Fixed-rank twin (r={twinRank})
              </button>
            ) : null}
          </>
        ) : (
          <button
            className="primary"
            onClick={() => void startTraining()}
            disabled={running || !canTrain}
            data-testid="start"
          >
            {phase === 'preparing' ? 'Preparing…' : 'Start training'}
          </button>
        )}
        <span className={`phase ${phase}`} data-testid="train-phase">
          {phase === 'idle' ? '' : phase}
        </span>
        <span className="spacer" />
        <button
          className="ghost small"
          onClick={() => void exportLora('kohya')}
          disabled={!caps?.has('exportLora') || running}
          data-testid="export-kohya"
          title="kohya keys: ComfyUI, AUTOMATIC1111"
        >
          Export LoRA
        </button>
        <button
          className="ghost small"
          onClick={() => void exportLora('peft')}
          disabled={!caps?.has('exportLora') || running}
          data-testid="export-peft"
          title="diffusers / PEFT with rank_pattern"
        >
          PEFT
        </button>
        <button
          className="ghost small"
          onClick={() => loraFile.current?.click()}
          disabled={!caps?.has('importLora') || running}
          data-testid="import-lora"
        >
          Import LoRA…
        </button>
        <input
          ref={loraFile}
          type="file"
          accept=".safetensors"
          hidden
          onChange={(e) => {
            const f = e.target.files?.[0];
            if (f) void importLora(f);
            e.target.value = '';
          }}
        />
      </div>
      <ProgressBar />
      {caps && !canTrain ? (
        <ErrorBox
          tone="info"
          testId="train-unavailable"
          error={describeError(new TrainerMissingError('startTraining'))}
        />
      ) : null}
      {model.phase === 'error' && model.error ? <ErrorBox error={model.error} testId="model-error" /> : null}
      {train.message ? (
        <p className="hint warning" data-testid="train-message">
          {train.message}
        </p>
      ) : null}
      {resume?.reason === 'reload' && phase === 'paused' ? (
        <div className="errorbox info" role="status" data-testid="resume-offer">
          <strong>Training was interrupted at step {resume.step}</strong>
          <p>The page was closed or reloaded while training. Resume continues from the last checkpoint.</p>
          <div className="row">
            <button className="primary" onClick={() => void startTraining()} disabled={!canTrain}>
              Resume
            </button>
            <button className="ghost" onClick={dismissResume}>
              Not now
            </button>
          </div>
        </div>
      ) : null}
      {phase === 'error' && train.error ? (
        <ErrorBox error={train.error} testId="train-error" onResume={() => void startTraining()} />
      ) : null}
    </section>
  );
}
