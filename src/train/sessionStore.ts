// Sessions in IndexedDB (idb-keyval store 'lora2-studio'/'kv'): versioned records under `session:<id>`,
// `photo:<id>:<n>`, `history:<id>`, `sample:<id>:<n>`; `ckpt:<id>…` keys belong to the trainer and
// `class:<spec>` sets (prior preservation's class images) to no session. Old records
// are migrated on read; writes that belong together go in one transaction, the session record (the
// pointer to the others) last; a full disk becomes a StorageFullError that says what to delete.
import { createStore, delMany, getMany, get as idbGet, type UseStore } from 'idb-keyval';
import type { RgbaImage } from '../io/png';
import type { GenerateRequest, SessionSummary, TrainSettings } from '../../workers/api';
import { decodeSessionFile, encodeSessionFile, SessionFileError } from './sessionFile';
import { withDefaultSettings } from './trainSettings';

export const SCHEMA_VERSION = 2;
export const DB_NAME = 'lora2-studio';
export const STORE_NAME = 'kv';

export const storeKeys = {
  session: (id: string) => `session:${id}`,
  photo: (id: string, n: number) => `photo:${id}:${n}`,
  history: (id: string) => `history:${id}`,
  sample: (id: string, n: number) => `sample:${id}:${n}`,
  /** Prior preservation's class images, shared by every session that asks for the same set. */
  classImages: (cacheKey: string) => `${CLASS_IMAGES_PREFIX}${cacheKey}`,
};
const CLASS_IMAGES_PREFIX = 'class:';
const SESSION_KEY_PREFIXES = ['session', 'photo', 'history', 'sample', 'ckpt'] as const;

/** The session a key belongs to (any prefix, the trainer's `ckpt:` keys included). */
export function sessionOfKey(key: string): string | undefined {
  const m = /^(session|photo|history|sample|ckpt):([^:]+)/.exec(key);
  return m?.[2];
}

export type SessionState = SessionSummary['state'];
export type LayerBlock = 'down' | 'mid' | 'up';

export interface SessionRecord {
  schemaVersion: number;
  id: string;
  name: string;
  createdAt: number;
  updatedAt: number;
  /** The model folder the session trains, e.g. "/models/emoji-tiny/". */
  modelUrl: string;
  settings: TrainSettings;
  state: SessionState;
  step: number;
  /** The n of each `photo:<id>:<n>`, in display order; `nextPhoto` is never reused. */
  photos: number[];
  nextPhoto: number;
  samples: number[];
  nextSample: number;
  /**
   * The session whose photos and settings this one copied ("Train again in a new session"): its prompt was the
   * person's choice there, so a model's example prompt never replaces it.
   */
  trainedFrom?: string;
}

export interface PhotoRecord {
  schemaVersion: number;
  name: string;
  type: string;
  /** Oriented size; 0 when unknown (migrated records), then the UI decodes again. */
  width: number;
  height: number;
  blob: Blob;
  thumbnail?: Blob;
  addedAt: number;
  /** This photo's training prompt (kohya's caption .txt); absent or empty: the session's prompt. */
  caption?: string;
}

export interface ContributionSnapshot {
  step: number;
  /** Per layer, per rank position: f(i)·‖B[:,i]‖·‖A[i,:]‖. */
  rows: Float32Array[];
}

export interface HistoryRecord {
  schemaVersion: number;
  layers: { name: string; block: LayerBlock }[];
  /** Steps with a progress event; loss[t] and ranks[layer][t] belong to steps[t]. */
  steps: number[];
  loss: number[];
  ranks: number[][];
  contributions: ContributionSnapshot[];
  adapterBytes: number;
  fixedRankBytes: number;
}

export interface SampleRecord {
  schemaVersion: number;
  kind: 'preview' | 'generated';
  /** Training step of a preview. */
  step?: number;
  prompt: string;
  request?: GenerateRequest;
  width: number;
  height: number;
  image: Blob;
  createdAt: number;
}

// ---- migrations ----------------------------------------------------------------------------------------

export class SchemaTooNewError extends Error {
  constructor(
    readonly what: string,
    readonly version: number,
  ) {
    super(
      `This ${what} was saved by a newer LoRA² Studio (schema ${version}); this version reads up to ${SCHEMA_VERSION}. Update the app (reload) to open it.`,
    );
    this.name = 'SchemaTooNewError';
  }
}

/** The UNet block a diffusers (or original SD) module path sits in. */
export function blockOfLayer(name: string): LayerBlock {
  if (/(^|\.)(mid_block|middle_block)\b/.test(name)) return 'mid';
  if (/(^|\.)(up_blocks|output_blocks)\b/.test(name)) return 'up';
  return 'down';
}

type Raw = Record<string, unknown>;
type Migration = (r: Raw) => Raw;
const num = (x: unknown, d: number) => (typeof x === 'number' && Number.isFinite(x) ? x : d);
const str = (x: unknown, d: string) => (typeof x === 'string' ? x : d);

/**
 * Schema 1 (the first studio layout) kept flat, differently named settings and a `progress` object in the
 * session, photo count instead of a list, and history as one row per step with ranks keyed by layer name.
 */
const SESSION_MIGRATIONS: Record<number, Migration> = {
  1: (r) => {
    const s = (r.settings ?? {}) as Raw;
    const progress = (r.progress ?? {}) as Raw;
    const photoCount = num(r.photoCount, 0);
    return {
      id: r.id,
      name: r.title,
      createdAt: r.created,
      updatedAt: r.modified ?? r.created,
      modelUrl: r.model,
      state: progress.state,
      step: progress.step,
      photos: Array.from({ length: photoCount }, (_, i) => i),
      nextPhoto: photoCount,
      samples: [],
      nextSample: 0,
      settings: {
        prompt: s.prompt,
        steps: s.steps,
        learningRate: s.lr,
        rateLearningRate: s.rhoLr,
        maxRank: s.rankMax,
        initialRank: s.rankInit,
        priorRank: s.rank0,
        priorSigma: s.sigma,
        quantile: s.k,
        mode: s.baseline ? 'fixed' : 'lora2',
        fixedRank: s.baselineRank,
        seed: s.seed,
      },
      schemaVersion: 2,
    };
  },
};

const HISTORY_MIGRATIONS: Record<number, Migration> = {
  1: (r) => {
    const points = (Array.isArray(r.points) ? r.points : []) as { step: number; loss: number; ranks?: Raw }[];
    const names: string[] = [];
    for (const p of points) for (const n of Object.keys(p.ranks ?? {})) if (!names.includes(n)) names.push(n);
    return {
      layers: names.map((name) => ({ name, block: blockOfLayer(name) })),
      steps: points.map((p) => p.step),
      loss: points.map((p) => p.loss),
      ranks: names.map((n) => points.map((p) => num(p.ranks?.[n], Number.NaN))),
      contributions: [],
      schemaVersion: 2,
    };
  },
};

const SESSION_STATES: SessionState[] = ['new', 'running', 'paused', 'done', 'stopped'];

function versionOf(r: Raw): number {
  return num(r.schemaVersion ?? r.version, 1);
}

function upgrade(what: string, raw: unknown, migrations: Record<number, Migration>): Raw {
  if (!raw || typeof raw !== 'object') throw new TypeError(`${what} record is not an object`);
  let r = raw as Raw;
  let v = versionOf(r);
  if (v > SCHEMA_VERSION) throw new SchemaTooNewError(what, v);
  for (; v < SCHEMA_VERSION; v++) r = migrations[v] ? migrations[v](r) : { ...r, schemaVersion: v + 1 };
  return r;
}

const numList = (x: unknown) => (Array.isArray(x) ? x.filter((n) => Number.isInteger(n)) : []) as number[];

/** Any stored or imported session record, brought to the current schema with every field present. */
export function migrateSession(raw: unknown): SessionRecord {
  const r = upgrade('session', raw, SESSION_MIGRATIONS);
  const id = str(r.id, '');
  if (!id) throw new TypeError('session record has no id');
  const createdAt = num(r.createdAt, 0);
  const photos = numList(r.photos);
  const samples = numList(r.samples);
  return {
    schemaVersion: SCHEMA_VERSION,
    id,
    name: str(r.name, 'Untitled session'),
    createdAt,
    updatedAt: num(r.updatedAt, createdAt),
    modelUrl: str(r.modelUrl, DEFAULT_MODEL_URL),
    settings: withDefaultSettings(r.settings as Raw),
    state: SESSION_STATES.includes(r.state as SessionState) ? (r.state as SessionState) : 'new',
    step: num(r.step, 0),
    photos,
    nextPhoto: Math.max(num(r.nextPhoto, 0), ...photos.map((n) => n + 1), 0),
    samples,
    nextSample: Math.max(num(r.nextSample, 0), ...samples.map((n) => n + 1), 0),
    ...(typeof r.trainedFrom === 'string' ? { trainedFrom: r.trainedFrom } : {}),
  };
}

export function migrateHistory(raw: unknown): HistoryRecord {
  const r = upgrade('history', raw, HISTORY_MIGRATIONS);
  const layers = (Array.isArray(r.layers) ? r.layers : []) as { name: string; block?: LayerBlock }[];
  return {
    schemaVersion: SCHEMA_VERSION,
    layers: layers.map((l) => ({ name: l.name, block: l.block ?? blockOfLayer(l.name) })),
    steps: (r.steps as number[]) ?? [],
    loss: (r.loss as number[]) ?? [],
    ranks: (r.ranks as number[][]) ?? layers.map(() => []),
    contributions: (r.contributions as ContributionSnapshot[]) ?? [],
    adapterBytes: num(r.adapterBytes, 0),
    fixedRankBytes: num(r.fixedRankBytes, 0),
  };
}

export function migratePhoto(raw: unknown): PhotoRecord {
  const r = upgrade('photo', raw, {});
  const blob = r.blob as Blob;
  return {
    schemaVersion: SCHEMA_VERSION,
    name: str(r.name, 'photo'),
    type: str(r.type, blob?.type ?? ''),
    width: num(r.width, 0),
    height: num(r.height, 0),
    blob,
    thumbnail: r.thumbnail instanceof Blob ? r.thumbnail : undefined,
    addedAt: num(r.addedAt, 0),
    ...(typeof r.caption === 'string' && r.caption.trim() ? { caption: r.caption } : {}),
  };
}

/** The photo with `caption` (trimmed), or without one when it is empty. */
function withCaption(photo: PhotoRecord, caption: string): PhotoRecord {
  const { caption: _old, ...rest } = photo;
  const text = caption.trim();
  return text ? { ...rest, caption: text } : rest;
}

export function migrateSample(raw: unknown): SampleRecord {
  const r = upgrade('sample', raw, {});
  return {
    schemaVersion: SCHEMA_VERSION,
    kind: r.kind === 'generated' ? 'generated' : 'preview',
    step: typeof r.step === 'number' ? r.step : undefined,
    prompt: str(r.prompt, ''),
    request: r.request as GenerateRequest | undefined,
    width: num(r.width, 0),
    height: num(r.height, 0),
    image: (r.image ?? r.png) as Blob,
    createdAt: num(r.createdAt, 0),
  };
}

// ---- storage -------------------------------------------------------------------------------------------

export const DEFAULT_MODEL_URL = '/models/emoji-tiny/';

/**
 * The model folder a page's query asks for: `?model=NAME` means `/models/NAME/` (one of the folders the app
 * ships under public/models; NAME is letters, digits and dashes). Undefined when the query names none.
 */
export function requestedModelUrl(search: string): string | undefined {
  const name = new URLSearchParams(search).get('model');
  if (name === null) return undefined;
  // local:NAME is a model imported from disk into the browser's storage (src/models/localModels.ts).
  const local = name.startsWith('local:');
  const bare = local ? name.slice('local:'.length) : name;
  if (!/^[a-z0-9][a-z0-9-]{0,63}$/i.test(bare))
    throw new Error(
      `?model=${name}: a model name is letters, digits and dashes, e.g. ?model=emoji-tiny (or ?model=local:NAME)`,
    );
  return local ? `local:${bare}` : `/models/${bare}/`;
}

/** The key/value operations the store needs: idb-keyval in the browser, a Map in tests. */
export interface KeyValueStore {
  get(key: string): Promise<unknown>;
  getMany(keys: string[]): Promise<unknown[]>;
  /** One transaction: all written or none. */
  setMany(entries: [string, unknown][]): Promise<void>;
  delMany(keys: string[]): Promise<void>;
  /** Keys that start with `prefix`, sorted. */
  keys(prefix?: string): Promise<string[]>;
}

export function idbKeyValueStore(store: UseStore = createStore(DB_NAME, STORE_NAME)): KeyValueStore {
  return {
    get: (k) => idbGet(k, store),
    getMany: (ks) => getMany(ks, store),
    // Committed as soon as the puts are issued, not when the task ends: a write started on pagehide lands
    // before the page is torn down (an uncommitted transaction of a gone page is aborted).
    setMany: (es) =>
      store('readwrite', (s) => {
        for (const [k, v] of es) s.put(v, k);
        s.transaction.commit?.();
        return new Promise<void>((resolve, reject) => {
          s.transaction.oncomplete = () => resolve();
          s.transaction.onabort = s.transaction.onerror = () => reject(s.transaction.error);
        });
      }),
    delMany: (ks) => delMany(ks, store),
    keys: (prefix = '') =>
      store(
        'readonly',
        (s) =>
          new Promise<string[]>((resolve, reject) => {
            const req = s.getAllKeys(prefix ? IDBKeyRange.bound(prefix, `${prefix}\uffff`) : undefined);
            req.onsuccess = () => resolve(req.result.map(String));
            req.onerror = () => reject(req.error);
          }),
      ),
  };
}

/** An in-memory store (tests); `quotaBytes` makes writes past it fail like a full disk. */
export function memoryKeyValueStore(
  opts: { quotaBytes?: number } = {},
): KeyValueStore & { data: Map<string, unknown> } {
  const data = new Map<string, unknown>();
  return {
    data,
    get: async (k) => structuredClone(data.get(k)),
    getMany: async (ks) => ks.map((k) => structuredClone(data.get(k))),
    setMany: async (es) => {
      if (opts.quotaBytes !== undefined) {
        const next = new Map(data);
        for (const [k, v] of es) next.set(k, v);
        let used = 0;
        for (const v of next.values()) used += valueBytes(v);
        if (used > opts.quotaBytes)
          throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      }
      for (const [k, v] of es) data.set(k, structuredClone(v));
    },
    delMany: async (ks) => ks.forEach((k) => data.delete(k)),
    keys: async (prefix = '') => [...data.keys()].filter((k) => k.startsWith(prefix)).sort(),
  };
}

/** Approximate stored size of a value (Blobs and binary exactly; the rest as structured-clone estimates). */
export function valueBytes(v: unknown, depth = 0): number {
  if (v === null || v === undefined) return 1;
  if (typeof v === 'number') return 8;
  if (typeof v === 'boolean') return 1;
  if (typeof v === 'string') return v.length * 2;
  if (v instanceof Blob) return v.size;
  if (v instanceof ArrayBuffer) return v.byteLength;
  if (ArrayBuffer.isView(v)) return v.byteLength;
  if (depth > 32 || typeof v !== 'object') return 0;
  if (Array.isArray(v)) return v.reduce<number>((s, x) => s + valueBytes(x, depth + 1), 8);
  let s = 8;
  for (const [k, x] of Object.entries(v)) s += k.length * 2 + valueBytes(x, depth + 1);
  return s;
}

export interface ClassImageSetInfo {
  /** The store key (`class:…`), for deleteClassImages. */
  key: string;
  /** What the cache key says (see classImageKey); undefined fields when it could not be read. */
  model?: string;
  prompt?: string;
  count?: number;
  steps?: number;
  guidance?: number;
  /** Images stored under the key. */
  images: number;
  bytes: number;
  previews: RgbaImage[];
}

/** The fields of a class-image cache key (`classImageKey`: a JSON array); {} for a key in another form. */
export function parseClassImageKey(
  cacheKey: string,
): Pick<ClassImageSetInfo, 'model' | 'prompt' | 'count' | 'steps' | 'guidance'> {
  try {
    const a = JSON.parse(cacheKey) as unknown;
    if (!Array.isArray(a)) return {};
    const [model, prompt, count, , steps, guidance] = a;
    const str = (x: unknown) => (typeof x === 'string' ? x : undefined);
    const num = (x: unknown) => (typeof x === 'number' ? x : undefined);
    return {
      model: str(model),
      prompt: str(prompt),
      count: num(count),
      steps: num(steps),
      guidance: num(guidance),
    };
  } catch {
    return {};
  }
}

export function isQuotaError(e: unknown): boolean {
  const name = (e as { name?: string } | undefined)?.name;
  return name === 'QuotaExceededError' || (e as { code?: number } | undefined)?.code === 22;
}

export class StorageFullError extends Error {
  constructor(
    readonly usage: number | undefined,
    readonly quota: number | undefined,
    /** Biggest sessions first: what deleting would free. */
    readonly largest: { id: string; name: string; bytes: number }[],
    /** Bytes of prior preservation's cached class images (deletable in the Sessions tab too). */
    readonly classImageBytes = 0,
  ) {
    const used = usage !== undefined && quota ? ` (${formatBytes(usage)} of ${formatBytes(quota)} used)` : '';
    const which = largest.length
      ? ` The largest: ${largest
          .slice(0, 3)
          .map((s) => `“${s.name}” ${formatBytes(s.bytes)}`)
          .join(', ')}.`
      : '';
    const classSets = classImageBytes
      ? ` Cached class images take ${formatBytes(classImageBytes)}; they can be deleted there too and are drawn again when needed.`
      : '';
    super(
      `Browser storage is full${used}. Delete sessions you no longer need in the Sessions tab (export them first to keep a copy).${which}${classSets}`,
    );
    this.name = 'StorageFullError';
  }
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(0)} KB`;
  return `${n} B`;
}

export function newSessionId(): string {
  const rand = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, '0'));
  return `${Date.now().toString(36)}${rand.join('')}`;
}

const sessionKeyPrefixes = (id: string) => SESSION_KEY_PREFIXES.map((p) => `${p}:${id}`);

export class SessionStore {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;
  /**
   * The latest session and photo records this store read or wrote (written ones as soon as the write starts):
   * what `updateNow` and `setPhotoCaptionNow` build on when a page going away cannot wait for a read.
   */
  private readonly known = new Map<string, unknown>();

  constructor(
    private readonly kv: KeyValueStore,
    private readonly opts: { now?: () => number; estimate?: () => Promise<StorageEstimate> } = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** Read-modify-write operations run one at a time, so concurrent updates are never lost. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private remember(key: string, value: unknown): void {
    if (key.startsWith('session:') || key.startsWith('photo:')) this.known.set(key, value);
  }

  private async write(entries: [string, unknown][], dels: string[] = []): Promise<void> {
    for (const [k, v] of entries) this.remember(k, v);
    for (const k of dels) this.known.delete(k);
    try {
      if (entries.length) await this.kv.setMany(entries);
      if (dels.length) await this.kv.delMany(dels);
    } catch (e) {
      // What was not written is not known: the next read asks the store again.
      for (const [k] of entries) this.known.delete(k);
      if (!isQuotaError(e)) throw e;
      const est = await this.opts.estimate?.().catch(() => undefined);
      const sizes = await this.sizes().catch(() => new Map<string, number>());
      const sessions = await this.list().catch(() => []);
      const largest = sessions
        .map((s) => ({ id: s.id, name: s.name, bytes: sizes.get(s.id) ?? 0 }))
        .sort((a, b) => b.bytes - a.bytes);
      const classSets = await this.classImageSets(0).catch(() => []);
      const classBytes = classSets.reduce((a, c) => a + c.bytes, 0);
      throw new StorageFullError(est?.usage, est?.quota, largest, classBytes);
    }
  }

  /** All keys of a session, the trainer's checkpoints included. */
  async keysOf(id: string): Promise<string[]> {
    const lists = await Promise.all(sessionKeyPrefixes(id).map((p) => this.kv.keys(p)));
    return lists.flat().filter((k) => sessionOfKey(k) === id);
  }

  async create(
    init: { name?: string; settings?: TrainSettings; modelUrl?: string; trainedFrom?: string } = {},
  ): Promise<SessionRecord> {
    const t = this.now();
    const rec: SessionRecord = {
      schemaVersion: SCHEMA_VERSION,
      id: newSessionId(),
      name: init.name ?? `Session ${new Date(t).toISOString().slice(0, 16).replace('T', ' ')}`,
      createdAt: t,
      updatedAt: t,
      modelUrl: init.modelUrl ?? DEFAULT_MODEL_URL,
      settings: withDefaultSettings(init.settings as unknown as Raw),
      state: 'new',
      step: 0,
      photos: [],
      nextPhoto: 0,
      samples: [],
      nextSample: 0,
      ...(init.trainedFrom ? { trainedFrom: init.trainedFrom } : {}),
    };
    await this.write([[storeKeys.session(rec.id), rec]]);
    return rec;
  }

  /** The session, migrated to the current schema (and written back once when it was older). */
  async get(id: string): Promise<SessionRecord | undefined> {
    const raw = (await this.kv.get(storeKeys.session(id))) as Raw | undefined;
    if (!raw) return undefined;
    const rec = migrateSession(raw);
    if (versionOf(raw) !== SCHEMA_VERSION) await this.write([[storeKeys.session(id), rec]]);
    this.remember(storeKeys.session(id), rec);
    return rec;
  }

  /** Every session, newest first. Records too new to read are left out (and left alone). */
  async list(): Promise<SessionRecord[]> {
    const keys = await this.kv.keys('session:');
    const raws = await this.kv.getMany(keys);
    const out: SessionRecord[] = [];
    for (const raw of raws) {
      try {
        out.push(migrateSession(raw));
      } catch (e) {
        if (!(e instanceof SchemaTooNewError)) throw e;
      }
    }
    return out.sort((a, b) => b.updatedAt - a.updatedAt);
  }

  update(id: string, patch: Partial<Omit<SessionRecord, 'id' | 'schemaVersion'>>): Promise<SessionRecord> {
    return this.serial(async () => {
      const cur = await this.get(id);
      if (!cur) throw new Error(`session ${id} does not exist`);
      const next = { ...cur, ...patch, id, schemaVersion: SCHEMA_VERSION, updatedAt: this.now() };
      await this.write([[storeKeys.session(id), next]]);
      return next;
    });
  }

  /**
   * `update` for a page that is going away (pagehide): the write starts now, from the record this store last
   * read or wrote, because the continuation of a read may never run. Falls back to `update` when it knows none.
   */
  updateNow(id: string, patch: Partial<Omit<SessionRecord, 'id' | 'schemaVersion'>>): Promise<void> {
    const key = storeKeys.session(id);
    const cur = this.known.get(key) as SessionRecord | undefined;
    if (!cur) return this.update(id, patch).then(() => undefined);
    const next = { ...cur, ...patch, id, schemaVersion: SCHEMA_VERSION, updatedAt: this.now() };
    return this.write([[key, next]]);
  }

  /** Bytes per session id, summed over all its keys (photos, history, samples, checkpoints). */
  async sizes(): Promise<Map<string, number>> {
    const sizes = new Map<string, number>();
    for (const prefix of SESSION_KEY_PREFIXES) {
      const keys = await this.kv.keys(`${prefix}:`);
      const values = await this.kv.getMany(keys);
      keys.forEach((k, i) => {
        const id = sessionOfKey(k);
        if (id) sizes.set(id, (sizes.get(id) ?? 0) + valueBytes(values[i]));
      });
    }
    return sizes;
  }

  /** Session ids that own keys but no session record (left by an interrupted import or delete). */
  async orphans(): Promise<string[]> {
    const ids = new Set<string>();
    for (const prefix of SESSION_KEY_PREFIXES.slice(1)) {
      for (const k of await this.kv.keys(`${prefix}:`)) ids.add(sessionOfKey(k)!);
    }
    const existing = new Set((await this.kv.keys('session:')).map((k) => sessionOfKey(k)));
    return [...ids].filter((id) => !existing.has(id));
  }

  /**
   * The cached class-image sets (prior preservation), largest first, with up to `previews` images of each.
   * They belong to no session: deleting a session keeps them, and a later run with the same spec reuses them.
   */
  async classImageSets(previews = 4): Promise<ClassImageSetInfo[]> {
    const keys = await this.kv.keys(CLASS_IMAGES_PREFIX);
    const values = await this.kv.getMany(keys);
    return keys
      .map((key, i): ClassImageSetInfo => {
        const images = Array.isArray(values[i]) ? (values[i] as RgbaImage[]) : [];
        return {
          key,
          ...parseClassImageKey(key.slice(CLASS_IMAGES_PREFIX.length)),
          images: images.length,
          bytes: valueBytes(values[i]),
          previews: images.slice(0, previews),
        };
      })
      .sort((a, b) => b.bytes - a.bytes);
  }

  /** Deletes class-image sets by their store keys (all of them when `keys` is left out). */
  deleteClassImages(keys?: string[]): Promise<void> {
    return this.serial(async () => {
      const all = await this.kv.keys(CLASS_IMAGES_PREFIX);
      const gone = keys ? all.filter((k) => keys.includes(k)) : all;
      if (gone.length) await this.kv.delMany(gone);
    });
  }

  /** Deletes the session and everything it owns, checkpoints included, in one transaction. */
  delete(id: string): Promise<void> {
    return this.serial(async () => this.kv.delMany(await this.keysOf(id)));
  }

  // photos

  addPhotos(id: string, photos: Omit<PhotoRecord, 'schemaVersion' | 'addedAt'>[]): Promise<number[]> {
    return this.serial(async () => {
      const cur = await this.get(id);
      if (!cur) throw new Error(`session ${id} does not exist`);
      const ns = photos.map((_, i) => cur.nextPhoto + i);
      const t = this.now();
      const records: [string, unknown][] = photos.map((p, i) => [
        storeKeys.photo(id, ns[i]),
        { ...p, schemaVersion: SCHEMA_VERSION, addedAt: t } satisfies PhotoRecord,
      ]);
      const next = {
        ...cur,
        photos: [...cur.photos, ...ns],
        nextPhoto: cur.nextPhoto + ns.length,
        updatedAt: t,
      };
      await this.write([...records, [storeKeys.session(id), next]]);
      return ns;
    });
  }

  async photos(id: string): Promise<{ n: number; photo: PhotoRecord }[]> {
    const rec = await this.get(id);
    if (!rec) return [];
    const raws = await this.kv.getMany(rec.photos.map((n) => storeKeys.photo(id, n)));
    return rec.photos.flatMap((n, i) => {
      if (!raws[i]) return [];
      const photo = migratePhoto(raws[i]);
      this.remember(storeKeys.photo(id, n), photo);
      return [{ n, photo }];
    });
  }

  /** Sets the photo's caption; an empty one removes it (the photo trains with the session's prompt). */
  setPhotoCaption(id: string, n: number, caption: string): Promise<void> {
    return this.serial(async () => {
      const raw = await this.kv.get(storeKeys.photo(id, n));
      if (!raw) throw new Error(`photo ${n} of session ${id} does not exist`);
      await this.write([[storeKeys.photo(id, n), withCaption(migratePhoto(raw), caption)]]);
    });
  }

  /** `setPhotoCaption` for a page that is going away: from the record last read or written (see `updateNow`). */
  setPhotoCaptionNow(id: string, n: number, caption: string): Promise<void> {
    const cur = this.known.get(storeKeys.photo(id, n)) as PhotoRecord | undefined;
    if (!cur) return this.setPhotoCaption(id, n, caption);
    return this.write([[storeKeys.photo(id, n), withCaption(cur, caption)]]);
  }

  removePhoto(id: string, n: number): Promise<void> {
    return this.serial(async () => {
      const cur = await this.get(id);
      if (!cur) return;
      const next = { ...cur, photos: cur.photos.filter((x) => x !== n), updatedAt: this.now() };
      await this.write([[storeKeys.session(id), next]], [storeKeys.photo(id, n)]);
    });
  }

  // history

  async history(id: string): Promise<HistoryRecord | undefined> {
    const raw = await this.kv.get(storeKeys.history(id));
    return raw ? migrateHistory(raw) : undefined;
  }

  async saveHistory(id: string, h: Omit<HistoryRecord, 'schemaVersion'>): Promise<void> {
    await this.write([[storeKeys.history(id), { ...h, schemaVersion: SCHEMA_VERSION }]]);
  }

  // samples

  addSample(id: string, s: Omit<SampleRecord, 'schemaVersion' | 'createdAt'>): Promise<number> {
    return this.serial(async () => {
      const cur = await this.get(id);
      if (!cur) throw new Error(`session ${id} does not exist`);
      const n = cur.nextSample;
      const t = this.now();
      const rec: SampleRecord = { ...s, schemaVersion: SCHEMA_VERSION, createdAt: t };
      const next = { ...cur, samples: [...cur.samples, n], nextSample: n + 1, updatedAt: t };
      await this.write([
        [storeKeys.sample(id, n), rec],
        [storeKeys.session(id), next],
      ]);
      return n;
    });
  }

  async samples(id: string): Promise<{ n: number; sample: SampleRecord }[]> {
    const rec = await this.get(id);
    if (!rec) return [];
    const raws = await this.kv.getMany(rec.samples.map((n) => storeKeys.sample(id, n)));
    return rec.samples.flatMap((n, i) => (raws[i] ? [{ n, sample: migrateSample(raws[i]) }] : []));
  }

  removeSample(id: string, n: number): Promise<void> {
    return this.serial(async () => {
      const cur = await this.get(id);
      if (!cur) return;
      const next = { ...cur, samples: cur.samples.filter((x) => x !== n), updatedAt: this.now() };
      await this.write([[storeKeys.session(id), next]], [storeKeys.sample(id, n)]);
    });
  }

  // whole-session files

  async exportSession(id: string): Promise<Blob> {
    const keys = await this.keysOf(id);
    if (!keys.includes(storeKeys.session(id))) throw new Error(`session ${id} does not exist`);
    const values = await this.kv.getMany(keys);
    // The session record last, so an import writes it after everything it points to.
    const entries = keys.map((k, i) => [k, values[i]] as [string, unknown]);
    entries.sort((a, b) => Number(a[0].startsWith('session:')) - Number(b[0].startsWith('session:')));
    return encodeSessionFile({
      meta: { format: 'lora2-session', schemaVersion: SCHEMA_VERSION, sessionId: id, exportedAt: this.now() },
      entries,
    });
  }

  /**
   * Imports a session file. The session gets a fresh id when its own is taken (keys and the records'
   * `id`/`sessionId` fields are renamed); records are migrated like stored ones.
   */
  async importSession(file: Blob): Promise<SessionRecord> {
    const { meta, entries } = await decodeSessionFile(file);
    if (meta.format !== 'lora2-session')
      throw new SessionFileError('This file is not a LoRA² Studio session.');
    const oldId = String(meta.sessionId ?? '');
    const sessionEntry = entries.find(([k]) => k === storeKeys.session(oldId));
    if (!oldId || !sessionEntry) throw new SessionFileError('The session file holds no session record.');
    const taken = (await this.kv.get(storeKeys.session(oldId))) !== undefined;
    const id = taken ? newSessionId() : oldId;
    const rename = (k: string) => k.replace(/^([a-z]+):[^:]+/, (_, p: string) => `${p}:${id}`);
    const out: [string, unknown][] = [];
    let session: SessionRecord | undefined;
    for (const [k, v] of entries) {
      if (sessionOfKey(k) !== oldId) continue;
      let value = v;
      if (k.startsWith('session:')) {
        const rec = migrateSession({ ...(v as Raw), id });
        session = { ...rec, name: taken ? `${rec.name} (imported)` : rec.name, updatedAt: this.now() };
        value = session;
      } else if (k.startsWith('history:')) value = migrateHistory(v);
      else if (k.startsWith('photo:')) value = migratePhoto(v);
      else if (k.startsWith('sample:')) value = migrateSample(v);
      else if (value && typeof value === 'object' && (value as Raw).sessionId === oldId) {
        value = { ...(value as Raw), sessionId: id };
      }
      out.push([rename(k), value]);
    }
    out.sort((a, b) => Number(a[0].startsWith('session:')) - Number(b[0].startsWith('session:')));
    await this.write(out);
    return session!;
  }
}
