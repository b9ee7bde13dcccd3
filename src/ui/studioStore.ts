// The studio's UI state (zustand): what each view draws. High-frequency training metrics are not here
// (see metrics.ts); actions live in src/ui/actions/ and change this state through small named setters.
import type { ModelsState } from './actions/models';
import { create } from 'zustand';
import type { ModelInfo, TrainerMethod, TrainSettings } from '../../workers/api';
import type { ClassImageSetInfo, SampleRecord, SessionRecord } from '../train/sessionStore';
import type { CompareEntry } from './compare';
import { DEFAULT_TRAIN_SETTINGS } from '../train/trainSettings';
import type { ReadableError } from './errorText';

export type Tab = 'train' | 'generate' | 'sessions';

export interface PhotoItem {
  n: number;
  name: string;
  type: string;
  width: number;
  height: number;
  bytes: number;
  blob: Blob;
  /** Object URL of the square thumbnail. */
  thumbUrl: string;
  /** The photo's own training prompt; absent: the session's prompt. */
  caption?: string;
}

export interface PhotoNote {
  id: number;
  name: string;
  level: 'error' | 'warning';
  message: string;
}

export interface SampleItem {
  n: number;
  kind: SampleRecord['kind'];
  step?: number;
  prompt: string;
  request?: SampleRecord['request'];
  width: number;
  height: number;
  createdAt: number;
  blob: Blob;
  url: string;
}

export type TrainPhase =
  'idle' | 'preparing' | 'running' | 'pausing' | 'paused' | 'stopping' | 'stopped' | 'done' | 'error';

export interface SessionListItem {
  session: SessionRecord;
  bytes?: number;
}

/** The Sessions tab's comparison of saved sessions. */
export interface CompareState {
  /** Picked sessions, in the order they were ticked. */
  ids: string[];
  entries: CompareEntry[];
  loading: boolean;
  error?: ReadableError;
  render: {
    busy: boolean;
    step: number;
    total: number;
    etaMs?: number;
    error?: ReadableError;
    prompt?: string;
    seeds: number[];
    /** The base model, then each session (`sessionId`; `detail`: its mode and steps). */
    columns: { label: string; detail?: string; sessionId?: string }[];
    /** Object URLs of the PNGs, [seed][column]; undefined until rendered. */
    cells: (string | undefined)[][];
  };
}

export interface StudioState {
  tab: Tab;
  caps?: ReadonlySet<TrainerMethod>;
  model: {
    phase: 'idle' | 'loading' | 'ready' | 'missing' | 'error';
    info?: ModelInfo;
    error?: ReadableError;
  };
  session?: SessionRecord;
  photos: PhotoItem[];
  photoNotes: PhotoNote[];
  /** Files still being decoded. */
  photosBusy: number;
  /** Every caption typed is in IndexedDB (false while one waits for its write). */
  captionsSaved: boolean;
  selectedPhoto?: number;
  settings: TrainSettings;
  settingsSaved: boolean;
  train: { phase: TrainPhase; error?: ReadableError; message?: string };
  /** Offered after a reload mid-training or a lost device: resume from the last checkpoint. */
  resumeOffer?: { step: number; reason: 'reload' | 'device-lost' };
  /** The session has a LoRA checkpoint to generate with: trained steps, or a LoRA file imported into it. */
  adapterReady: boolean;
  samples: SampleItem[];
  generating: {
    busy: boolean;
    step: number;
    total: number;
    /** Time left; undefined until a sampling step ran after the first (which compiles the GPU pipelines). */
    etaMs?: number;
    error?: ReadableError;
    /** Sample numbers of the last result: one image, or [with the LoRA, base model] for a before/after. */
    latest?: number[];
  };
  sessions: {
    items: SessionListItem[];
    usage?: number;
    quota?: number;
    orphans: string[];
    /** Prior preservation's cached class images (shared by sessions, kept when one is deleted). */
    classSets: ClassImageSetInfo[];
    loading: boolean;
  };
  /** Models imported from disk into the browser's storage (Sessions tab). */
  models: ModelsState;
  /** One page-wide message (a full disk, an import that failed). */
  notice?: ReadableError & { id: number; info: boolean };
  offlineReady: boolean;
  compare: CompareState;
}

export const useStudio = create<StudioState>(() => ({
  tab: 'train',
  model: { phase: 'idle' },
  photos: [],
  photoNotes: [],
  photosBusy: 0,
  captionsSaved: true,
  settings: { ...DEFAULT_TRAIN_SETTINGS },
  settingsSaved: true,
  train: { phase: 'idle' },
  adapterReady: false,
  samples: [],
  generating: { busy: false, step: 0, total: 0 },
  sessions: { items: [], orphans: [], classSets: [], loading: false },
  models: { local: [] },
  offlineReady: false,
  compare: {
    ids: [],
    entries: [],
    loading: false,
    render: { busy: false, step: 0, total: 0, seeds: [], columns: [], cells: [] },
  },
}));

let noteSeq = 0;
export const nextNoteId = () => ++noteSeq;

export const setTab = (tab: Tab) => useStudio.setState({ tab });

const INFO_NOTICE_MS = 8000;

/** Shows a page-wide message; one without an action (a confirmation) goes away by itself. */
export function showNotice(e: ReadableError, opts: { info?: boolean } = {}): void {
  const id = nextNoteId();
  useStudio.setState({ notice: { ...e, id, info: opts.info ?? false } });
  if (opts.info) {
    setTimeout(() => {
      if (useStudio.getState().notice?.id === id) useStudio.setState({ notice: undefined });
    }, INFO_NOTICE_MS);
  }
}

export const dismissNotice = () => useStudio.setState({ notice: undefined });

/** True while a run holds the session (switching or deleting it must wait). */
export function isTraining(phase: TrainPhase): boolean {
  return phase === 'preparing' || phase === 'running' || phase === 'pausing' || phase === 'stopping';
}
