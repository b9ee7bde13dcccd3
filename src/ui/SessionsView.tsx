// Saved sessions: size of each (photos, history, samples, checkpoints), open, export, delete, tick to compare;
// import a session file; browser storage usage; data left without a session; the models (imported from disk too);
// prior preservation's cached class images.
import { useEffect, useRef } from 'react';
import type { RgbaImage } from '../io/png';
import { formatBytes, type ClassImageSetInfo } from '../train/sessionStore';
import {
  cleanOrphans,
  deleteClassImages,
  deleteSession,
  exportSession,
  importSession,
  newSession,
  openSession,
  refreshSessions,
} from './actions/session';
import { SESSION_FILE_EXTENSION } from '../train/sessionFile';
import { toggleCompare } from './actions/compare';
import { modeLabel } from './compare';
import { CompareView } from './CompareView';
import { ModelsPanel } from './ModelsPanel';
import { ConfirmDelete, TableHead } from './tableParts';
import { LOCAL_SCHEME } from '../models/localModels';
import { useStudio, type SessionListItem } from './studioStore';

const date = (t: number) =>
  t ? new Date(t).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '–';

/** A session's model as people name it: "emoji-tiny", or "my-sd15 (imported)". */
function modelLabel(url: string): string {
  if (url.startsWith(LOCAL_SCHEME)) return `${url.slice(LOCAL_SCHEME.length)} (imported)`;
  return url.replace(/\/+$/, '').split('/').pop() || url;
}

function Row({ item, current, picked }: { item: SessionListItem; current: boolean; picked: boolean }) {
  const s = item.session;
  return (
    <tr data-testid="session-row" data-session={s.id} className={current ? 'current' : ''}>
      <td>
        <input
          type="checkbox"
          data-testid="compare-pick"
          title="Compare this session with the other ticked ones"
          aria-label={`Compare ${s.name}`}
          checked={picked}
          onChange={() => void toggleCompare(s.id)}
        />
      </td>
      <td>
        <b>{s.name}</b>
        {current ? <span className="tag">open</span> : null}
        <div className="muted small">
          {s.settings.prompt} · {modelLabel(s.modelUrl)}
        </div>
      </td>
      <td>
        <span className={`phase ${s.state}`}>{s.state}</span>
      </td>
      <td>
        {s.step} / {s.settings.steps}
      </td>
      <td>{modeLabel(s.settings)}</td>
      <td>{s.photos.length}</td>
      <td data-testid="session-bytes">{item.bytes === undefined ? '…' : formatBytes(item.bytes)}</td>
      <td className="muted small">{date(s.updatedAt)}</td>
      <td className="actions">
        <button className="ghost small" onClick={() => void openSession(s.id)} disabled={current}>
          Open
        </button>
        <button className="ghost small" onClick={() => void exportSession(s.id)}>
          Export
        </button>
        <ConfirmDelete testId="delete-session" onDelete={() => void deleteSession(s.id)} />
      </td>
    </tr>
  );
}

/** One stored class image, drawn at its own size and scaled up without smoothing. */
function ImageThumb({ image }: { image: RgbaImage }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const c = canvas.current;
    if (!c) return;
    try {
      const pixels = new ImageData(new Uint8ClampedArray(image.data), image.width, image.height);
      c.width = image.width;
      c.height = image.height;
      c.getContext('2d')?.putImageData(pixels, 0, 0);
    } catch {
      // A damaged record: leave the tile blank (the set can still be deleted).
    }
  }, [image]);
  return <canvas ref={canvas} className="pixel-thumb" />;
}

function ClassSetRow({ set }: { set: ClassImageSetInfo }) {
  const model = set.model?.replace(/\/$/, '').split('/').pop();
  return (
    <tr data-testid="class-set-row">
      <td>
        <b>{set.prompt ?? '(unreadable key)'}</b>
        {model ? <div className="muted small">{model}</div> : null}
      </td>
      <td className="class-previews">
        {set.previews.map((im, i) => (
          <ImageThumb key={i} image={im} />
        ))}
      </td>
      <td>{set.images}</td>
      <td className="muted small">
        {set.steps !== undefined ? `${set.steps} steps` : ''}
        {set.guidance !== undefined ? ` · guidance ${set.guidance}` : ''}
      </td>
      <td data-testid="class-set-bytes">{formatBytes(set.bytes)}</td>
      <td className="actions">
        <button
          className="ghost small"
          data-testid="delete-class-set"
          onClick={() => void deleteClassImages([set.key])}
        >
          Delete
        </button>
      </td>
    </tr>
  );
}

/** Prior preservation's cached class images: shared by sessions, so they are listed and deleted here. */
function ClassImageSets({ sets, bytes }: { sets: ClassImageSetInfo[]; bytes: number }) {
  if (sets.length === 0) return null;
  return (
    <section className="panel" data-testid="class-sets">
      <div className="row">
        <h2>Class images</h2>
        <span className="muted small">
          {sets.length} set{sets.length > 1 ? 's' : ''} · {formatBytes(bytes)}
        </span>
        <span className="spacer" />
        <button className="ghost" data-testid="clear-class-sets" onClick={() => void deleteClassImages()}>
          Delete all
        </button>
      </div>
      <p className="hint">
        Prior preservation draws these with the base model once and reuses them in every session with the same
        model, class prompt and count. Deleting a set frees the space; a run that needs it draws it again.
      </p>
      <table className="sessions">
        <TableHead columns={['Class prompt', 'Preview', 'Images', 'Drawn with', 'Size', '']} />
        <tbody>
          {sets.map((s) => (
            <ClassSetRow key={s.key} set={s} />
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function SessionsView() {
  const sessions = useStudio((s) => s.sessions);
  const current = useStudio((s) => s.session?.id);
  const picked = useStudio((s) => s.compare.ids);
  const file = useRef<HTMLInputElement>(null);
  useEffect(() => {
    void refreshSessions();
  }, []);
  const total = sessions.items.reduce((a, i) => a + (i.bytes ?? 0), 0);
  const classBytes = sessions.classSets.reduce((a, s) => a + s.bytes, 0);
  const modelBytes = useStudio((s) => s.models.local.reduce((a, m) => a + m.bytes, 0));
  const pct = sessions.quota ? (100 * (sessions.usage ?? 0)) / sessions.quota : 0;
  return (
    <div className="sessions-view" data-testid="sessions-view">
      <section className="panel">
        <div className="row">
          <h2>Sessions</h2>
          <span className="spacer" />
          <button onClick={() => void newSession()} data-testid="new-session">
            New session
          </button>
          <button className="ghost" onClick={() => file.current?.click()}>
            Import session…
          </button>
          <input
            ref={file}
            type="file"
            hidden
            accept={`${SESSION_FILE_EXTENSION},application/octet-stream`}
            data-testid="session-import-input"
            onChange={(e) => {
              const f = e.target.files?.[0];
              if (f) void importSession(f);
              e.target.value = '';
            }}
          />
        </div>
        <div className="storage" data-testid="storage-usage">
          <div className="track">
            <i style={{ width: `${Math.min(100, pct)}%` }} className={pct > 90 ? 'bad' : ''} />
          </div>
          <span>
            Sessions {formatBytes(total)}
            {classBytes ? ` · class images ${formatBytes(classBytes)}` : ''}
            {modelBytes ? ` · imported models ${formatBytes(modelBytes)}` : ''} · browser storage{' '}
            {formatBytes(sessions.usage ?? 0)} of {sessions.quota ? formatBytes(sessions.quota) : '?'} used
          </span>
        </div>
        {sessions.orphans.length > 0 ? (
          <p className="hint warning">
            Data of {sessions.orphans.length} deleted session{sessions.orphans.length > 1 ? 's' : ''} is left
            over.{' '}
            <button className="ghost small" onClick={() => void cleanOrphans()}>
              Clean up
            </button>
          </p>
        ) : null}
        <table className="sessions">
          <TableHead
            columns={['Compare', 'Name', 'State', 'Steps', 'Mode', 'Photos', 'Size', 'Updated', '']}
          />
          <tbody>
            {sessions.items.map((item) => (
              <Row
                key={item.session.id}
                item={item}
                current={item.session.id === current}
                picked={picked.includes(item.session.id)}
              />
            ))}
          </tbody>
        </table>
        {sessions.items.length === 0 && !sessions.loading ? (
          <p className="muted">No saved sessions.</p>
        ) : null}
      </section>
      <CompareView />
      <ModelsPanel />
      <ClassImageSets sets={sessions.classSets} bytes={classBytes} />
    </div>
  );
}
