// Compare actions (Sessions tab): pick up to four saved sessions, read their stored histories and checkpoints,
// and render one prompt with each session's LoRA beside the base model at the same seeds. The renders are a
// view, not samples of any one session: they stay in memory until the next render, and download as one PNG.
import type { GenerateRequest } from '../../../workers/api';
import { imageGrid } from '../../io/imageGrid';
import { encodePng, type RgbaImage } from '../../io/png';
import { DEFAULT_MODEL_URL } from '../../train/sessionStore';
import { rgbaToPng } from '../../train/photos';
import { MAX_COMPARED, modeLabel, type CompareEntry } from '../compare';
import { saveBlob } from '../download';
import { describeError } from '../errorText';
import { sessionStore } from '../services';
import { isTraining, showNotice, useStudio, type CompareState } from '../studioStore';
import { trainer } from '../trainerClient';
import { requireTrainerMethod, trainerCapabilities } from '../trainerCaps';
import { renderAll } from './generate';

const setCompare = (patch: Partial<CompareState>) =>
  useStudio.setState((s) => ({ compare: { ...s.compare, ...patch } }));
const setRender = (patch: Partial<CompareState['render']>) =>
  useStudio.setState((s) => ({ compare: { ...s.compare, render: { ...s.compare.render, ...patch } } }));

/** Adds the session to the comparison, or takes it out. */
export async function toggleCompare(id: string): Promise<void> {
  const { ids } = useStudio.getState().compare;
  if (ids.includes(id)) setCompare({ ids: ids.filter((x) => x !== id) });
  else if (ids.length >= MAX_COMPARED) {
    showNotice({
      title: 'Compare',
      message: `At most ${MAX_COMPARED} sessions side by side: untick one first.`,
      action: 'none',
    });
    return;
  } else setCompare({ ids: [...ids, id] });
  await loadCompare();
}

let loadSeq = 0;

/**
 * Reads the picked sessions, their metric histories and checkpoint steps from storage (sessions deleted
 * meanwhile drop out). Only the latest call's answer is kept.
 */
export async function loadCompare(): Promise<void> {
  const seq = ++loadSeq;
  const { ids } = useStudio.getState().compare;
  setCompare({ loading: true, error: undefined });
  try {
    const caps = await trainerCapabilities().catch(() => new Set<string>());
    const entries: CompareEntry[] = [];
    for (const id of ids) {
      const session = await sessionStore.get(id);
      if (!session) continue;
      const history = await sessionStore.history(id);
      const checkpoints = caps.has('listCheckpoints')
        ? (
            await trainer()
              .listCheckpoints(id)
              .catch(() => [])
          ).map((c) => c.step)
        : [];
      entries.push({ session, history, checkpoints });
    }
    if (seq !== loadSeq) return;
    setCompare({ entries, ids: entries.map((e) => e.session.id), loading: false });
  } catch (e) {
    if (seq !== loadSeq) return;
    setCompare({ loading: false, error: describeError(e) });
  }
}

/** Why the picked sessions cannot be rendered now, in words; undefined when they can. */
export function renderBlocker(): string | undefined {
  const { compare, model, train, generating } = useStudio.getState();
  const url = model.info?.url;
  if (compare.entries.length === 0) return 'Tick the sessions to compare in the list above.';
  if (model.phase !== 'ready' || !url) return 'The model is not loaded yet.';
  const elsewhere = compare.entries.filter((e) => (e.session.modelUrl ?? DEFAULT_MODEL_URL) !== url);
  if (elsewhere.length)
    return (
      `${elsewhere.map((e) => `“${e.session.name}”`).join(', ')} trained on another model than the one loaded ` +
      `(${model.info!.name}): open a session on that model to render it.`
    );
  const untrained = compare.entries.filter((e) => e.checkpoints.length === 0);
  if (untrained.length)
    return (
      `${untrained.map((e) => `“${e.session.name}”`).join(', ')} ${untrained.length > 1 ? 'have' : 'has'} ` +
      'no LoRA yet: train or import one first.'
    );
  if (isTraining(train.phase)) return 'Training is running: pause it to render.';
  if (generating.busy || compare.render.busy) return 'Images are being rendered.';
  return undefined;
}

/** The last render's images (rows: seeds; columns: base model, then each session), for the PNG download. */
let rendered: RgbaImage[][] = [];

/**
 * Renders `prompt` at each seed with the base model and with each picked session's LoRA (strength 1), the
 * model's sampler settings otherwise: a grid whose rows are seeds and whose columns are the runs.
 */
export async function renderCompare(opts: {
  prompt: string;
  seeds: number[];
  steps: number;
  guidance: number;
}): Promise<void> {
  const blocker = renderBlocker();
  if (blocker) {
    setRender({ error: { title: 'Cannot render', message: blocker, action: 'none' } });
    return;
  }
  const { entries, render: old } = useStudio.getState().compare;
  for (const row of old.cells) for (const c of row) if (c) URL.revokeObjectURL(c);
  const columns: CompareState['render']['columns'] = [
    { label: 'base model' },
    ...entries.map((e) => ({
      label: e.session.name,
      detail: `${modeLabel(e.session.settings)} · step ${Math.max(0, ...e.checkpoints)}`,
      sessionId: e.session.id,
    })),
  ];
  rendered = opts.seeds.map(() => []);
  const cells = opts.seeds.flatMap((seed, r) => columns.map((col, c) => ({ r, c, seed, col })));
  const requests: GenerateRequest[] = cells.map(({ seed, col }) => ({
    prompt: opts.prompt,
    seed,
    steps: opts.steps,
    guidance: opts.guidance,
    sampler: 'ddim',
    sessionId: col.sessionId,
    loraStrength: col.sessionId ? 1 : 0,
  }));
  const total = opts.steps * requests.length;
  setRender({
    busy: true,
    step: 0,
    total,
    etaMs: undefined,
    error: undefined,
    prompt: opts.prompt,
    seeds: opts.seeds,
    columns,
    cells: opts.seeds.map(() => columns.map(() => undefined)),
  });
  try {
    await requireTrainerMethod('generate');
    await renderAll(requests, setRender, async (k, img) => {
      const { r, c } = cells[k];
      const rgba = { width: img.width, height: img.height, data: new Uint8ClampedArray(img.rgba) };
      rendered[r][c] = rgba;
      const url = URL.createObjectURL(await rgbaToPng(rgba.data, rgba.width, rgba.height));
      useStudio.setState((s) => {
        const grid = s.compare.render.cells.map((row) => [...row]);
        grid[r][c] = url;
        return { compare: { ...s.compare, render: { ...s.compare.render, cells: grid } } };
      });
    });
    setRender({ busy: false, step: total, etaMs: undefined });
  } catch (e) {
    console.error(e);
    // What was rendered before the error stays on screen.
    setRender({ busy: false, error: describeError(e) });
  }
}

/** Saves the last render as one PNG (rows: seeds; columns: base model, then the sessions in pick order). */
export async function downloadCompareGrid(): Promise<void> {
  const { columns, seeds } = useStudio.getState().compare.render;
  const images = rendered.flat();
  if (images.length === 0 || images.length !== seeds.length * columns.length) return;
  try {
    const scale = Math.max(1, Math.floor(128 / images[0].width));
    const png = await encodePng(imageGrid(images, columns.length, scale));
    const name = columns
      .slice(1)
      .map((c) => c.label.replace(/[^\w.-]+/g, '-'))
      .join('_vs_');
    saveBlob(
      new Blob([png as Uint8Array<ArrayBuffer>], { type: 'image/png' }),
      `compare_${name}_seeds-${seeds.join('-')}.png`,
    );
  } catch (e) {
    showNotice(describeError(e));
  }
}
