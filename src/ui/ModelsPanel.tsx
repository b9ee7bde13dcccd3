// Models (Sessions tab): the embedded default and the folders imported from disk into the browser's storage;
// import a folder (with progress and ETA), start a session on a model, delete an imported one.
import { useEffect, useRef } from 'react';
import { LOCAL_SCHEME, type LocalModelInfo } from '../models/localModels';
import { DEFAULT_MODEL_URL, formatBytes } from '../train/sessionStore';
import { deleteModel, importModelFolder, refreshModels, trainLocalModel } from './actions/models';
import { newSession } from './actions/session';
import { formatDuration } from './metrics';
import { isTraining, useStudio } from './studioStore';
import { ConfirmDelete, TableHead } from './tableParts';

function ImportProgress() {
  const importing = useStudio((s) => s.models.importing);
  if (!importing) return null;
  const { name, done, total, etaMs: eta } = importing;
  return (
    <div className="storage" data-testid="model-import-progress">
      <div className="track">
        <i style={{ width: `${total ? (100 * done) / total : 0}%` }} />
      </div>
      <span>
        Importing “{name}”: {formatBytes(done)} of {formatBytes(total)}
        {eta !== undefined ? ` · ETA ${formatDuration(eta)}` : ''}
      </span>
    </div>
  );
}

function LocalRow({ model, open, busy }: { model: LocalModelInfo; open: boolean; busy: boolean }) {
  return (
    <tr data-testid="model-row" data-model={model.name}>
      <td>
        <b>{model.name}</b>
        {open ? <span className="tag">open</span> : null}
        <div className="muted small">imported · {LOCAL_SCHEME + model.name}</div>
      </td>
      <td>{model.files}</td>
      <td>{formatBytes(model.bytes)}</td>
      <td className="actions">
        <button className="ghost small" disabled={busy} onClick={() => void trainLocalModel(model.name)}>
          Use
        </button>
        <ConfirmDelete testId="model-delete" onDelete={() => void deleteModel(model.name)} />
      </td>
    </tr>
  );
}

export function ModelsPanel() {
  const models = useStudio((s) => s.models);
  const modelUrl = useStudio((s) => s.session?.modelUrl ?? DEFAULT_MODEL_URL);
  const busy = useStudio((s) => isTraining(s.train.phase));
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    // React has no typed prop for it: the input picks a whole folder.
    input.current?.setAttribute('webkitdirectory', '');
    void refreshModels();
  }, []);
  const total = models.local.reduce((a, m) => a + m.bytes, 0);
  return (
    <section className="panel" data-testid="models-panel">
      <div className="row">
        <h2>Models</h2>
        {models.local.length > 0 ? (
          <span className="muted small">
            {models.local.length} imported · {formatBytes(total)}
          </span>
        ) : null}
        <span className="spacer" />
        <button
          className="ghost"
          disabled={models.importing !== undefined}
          onClick={() => input.current?.click()}
          data-testid="model-import"
        >
          Import model folder…
        </button>
        <input
          ref={input}
          type="file"
          hidden
          multiple
          data-testid="model-import-input"
          onChange={(e) => {
            if (e.target.files?.length) void importModelFolder(e.target.files);
            e.target.value = '';
          }}
        />
      </div>
      <p className="hint">
        A model folder from your disk is copied into this browser's storage (nothing is uploaded) and works
        offline: the studio's layout (config.json, unet.safetensors, text_encoder.onnx, a tokenizer,
        scheduler_config.json, and for latent models vae_decoder.onnx, vae_encoder.onnx, vae_config.json) or
        diffusers' (unet/, scheduler/, tokenizer/) with ONNX text encoder and VAE (text_encoder/model.onnx,
        vae_decoder/model.onnx, …).
      </p>
      <ImportProgress />
      {models.problem ? (
        <p className="hint warning" data-testid="model-import-problem">
          {models.problem}
        </p>
      ) : null}
      <table className="sessions">
        <TableHead columns={['Model', 'Files', 'Size', '']} />
        <tbody>
          <tr data-testid="model-row" data-model="emoji-tiny">
            <td>
              <b>emoji-tiny</b>
              {modelUrl === DEFAULT_MODEL_URL ? <span className="tag">open</span> : null}
              <div className="muted small">built in · the default</div>
            </td>
            <td />
            <td />
            <td className="actions">
              <button
                className="ghost small"
                disabled={busy}
                onClick={() => void newSession({ modelUrl: DEFAULT_MODEL_URL })}
              >
                Use
              </button>
            </td>
          </tr>
          {models.local.map((m) => (
            <LocalRow key={m.name} model={m} open={modelUrl === LOCAL_SCHEME + m.name} busy={busy} />
          ))}
        </tbody>
      </table>
    </section>
  );
}
