// Training settings: prompt with identifier and class word, steps, the LoRA² rank prior (max rank, prior
// rank r₀, σ) or the fixed-rank baseline, and advanced fields; problems are shown beside each field.
import { useState, type ReactNode } from 'react';
import type { TrainSettings } from '../../workers/api';
import type { TargetPreset } from '../lora/adapter';
import {
  DEFAULT_TRAIN_SETTINGS,
  identifiersIn,
  validateTrainSettings,
  type SettingsField,
} from '../train/trainSettings';
import { updateSettings } from './actions/session';
import { isTraining, useStudio } from './studioStore';

type NumericField = {
  [K in keyof TrainSettings]-?: TrainSettings[K] extends number ? K : never;
}[keyof TrainSettings];

function NumberField({
  field,
  label,
  step,
  hint,
  disabled,
}: {
  field: NumericField;
  label: ReactNode;
  step?: number;
  hint?: string;
  disabled?: boolean;
}) {
  const value = useStudio((s) => s.settings[field]);
  // Text state so a half-typed number ("0.", "") is not overwritten while typing.
  const [text, setText] = useState(String(value));
  const [shown, setShown] = useState(value);
  if (!Object.is(shown, value)) {
    // The value changed from outside (another session, reset to defaults): show it.
    setShown(value);
    if (!(Number(text) === value || Number.isNaN(value))) setText(String(value));
  }
  return (
    <label className="field">
      <span className="label">
        {label}
        {hint ? (
          <i className="help" title={hint}>
            ?
          </i>
        ) : null}
      </span>
      <input
        type="number"
        step={step ?? 'any'}
        value={text}
        disabled={disabled}
        data-testid={`setting-${field}`}
        onChange={(e) => {
          setText(e.target.value);
          updateSettings({ [field]: e.target.value.trim() === '' ? Number.NaN : Number(e.target.value) });
        }}
      />
      <span className="default">default {DEFAULT_TRAIN_SETTINGS[field]}</span>
    </label>
  );
}

/** A free-text setting (the prompts), with a line of guidance under it. */
function TextField({
  field,
  label,
  placeholder,
  children,
}: {
  field: 'prompt' | 'classPrompt' | 'previewPrompt';
  label: string;
  placeholder: string;
  children: ReactNode;
}) {
  const value = useStudio((s) => s.settings[field]);
  return (
    <label className="field wide">
      <span className="label">{label}</span>
      <input
        type="text"
        value={value}
        spellCheck={false}
        data-testid={`setting-${field}`}
        placeholder={placeholder}
        onChange={(e) => updateSettings({ [field]: e.target.value })}
      />
      <span className="default">{children}</span>
    </label>
  );
}

function Issues({
  fields,
  issues,
}: {
  fields: SettingsField[];
  issues: ReturnType<typeof validateTrainSettings>;
}) {
  const mine = issues.filter((i) => fields.includes(i.field));
  if (mine.length === 0) return null;
  return (
    <ul className="issues">
      {mine.map((i) => (
        <li key={i.field + i.message} className={i.level} data-testid={`issue-${i.field}`}>
          {i.message}
        </li>
      ))}
    </ul>
  );
}

export function SettingsPanel() {
  const settings = useStudio((s) => s.settings);
  const saved = useStudio((s) => s.settingsSaved);
  const tokens = useStudio((s) => s.model.info?.identifierTokens);
  const example = useStudio((s) => s.model.info?.sampling.trainPrompt);
  const locked = useStudio((s) => isTraining(s.train.phase));
  const codec = useStudio((s) => s.model.info?.codec);
  const issues = validateTrainSettings(settings, tokens, codec);
  const fixed = settings.mode === 'fixed';

  return (
    <section className="panel settings" data-testid="settings-panel">
      <h2>
        Training
        <span className="saved" data-testid="settings-saved" data-saved={String(saved)}>
          {saved ? 'saved' : 'saving…'}
        </span>
      </h2>
      <fieldset disabled={locked}>
        <TextField field="prompt" label="Prompt" placeholder={example ?? DEFAULT_TRAIN_SETTINGS.prompt}>
          identifier {tokens?.slice(0, 2).join(', ') ?? '<v1>'} + a class word (dog, person, mug)
          {example && (
            <span data-testid="prompt-example">
              ; this model&apos;s example: <code>{example}</code>
            </span>
          )}
        </TextField>
        <Issues fields={['prompt']} issues={issues} />
        <div className="grid2">
          <NumberField field="steps" label="Steps" step={1} />
          <NumberField field="previewEvery" label="Preview every" step={1} hint="0 = no previews" />
        </div>
        <Issues fields={['steps', 'previewEvery']} issues={issues} />
        {settings.previewEvery > 0 ? (
          <>
            <TextField
              field="previewPrompt"
              label="Preview prompt"
              placeholder={`empty = ${settings.prompt}`}
            >
              what the previews draw, e.g. the subject somewhere new:{' '}
              <code>{identifiersIn(settings.prompt)[0] ?? '<v1>'} … in the snow</code>
            </TextField>
            <Issues fields={['previewPrompt']} issues={issues} />
          </>
        ) : null}

        <label className="switch" data-testid="mode-switch">
          <input
            type="checkbox"
            checked={fixed}
            data-testid="mode-fixed"
            onChange={(e) => updateSettings({ mode: e.target.checked ? 'fixed' : 'lora2' })}
          />
          <span className="track" />
          <span>
            Fixed-rank baseline{' '}
            <small>{fixed ? 'plain LoRA at one rank' : 'off: LoRA² learns each rank'}</small>
          </span>
        </label>

        {fixed ? (
          <NumberField field="fixedRank" label="Rank r" step={1} />
        ) : (
          <div className="grid3">
            <NumberField
              field="maxRank"
              label={
                <>
                  Max rank R<sub>max</sub>
                </>
              }
              step={1}
            />
            <NumberField
              field="priorRank"
              label={<>Prior rank r₀</>}
              step={1}
              hint="the rank the prior pulls every layer towards"
            />
            <NumberField
              field="priorSigma"
              label="Prior σ"
              step={0.05}
              hint="smaller = stronger prior (keep ≥ 0.2)"
            />
          </div>
        )}
        <Issues fields={['fixedRank', 'maxRank', 'priorRank', 'priorSigma']} issues={issues} />

        <details className="advanced">
          <summary>Advanced</summary>
          <div className="grid2">
            <NumberField field="learningRate" label="LR (A)" />
            <NumberField field="learningRateB" label="LR (B)" hint="LoRA+ trains B faster than A" />
            <NumberField field="rateLearningRate" label="LR (ρ)" disabled={fixed} />
            <NumberField field="initialRank" label="Initial rank" step={1} disabled={fixed} />
            <NumberField field="quantile" label="Quantile k" step={0.01} disabled={fixed} />
            <NumberField field="batchSize" label="Batch size" step={1} />
            <NumberField field="seed" label="Seed" step={1} />
            <NumberField field="checkpointEvery" label="Checkpoint every" step={1} />
            <label className="field">
              <span className="label">Layers</span>
              <select
                value={settings.layers ?? 'attention'}
                data-testid="setting-layers"
                onChange={(e) => updateSettings({ layers: e.target.value as TargetPreset })}
              >
                <option value="attention">attention (q, k, v, out)</option>
                <option value="attention+conv">attention + ResNet convs (LoCon)</option>
              </select>
              <span className="default">LoCon: more of the subject&apos;s shape, larger file</span>
            </label>
            <NumberField
              field="gradientAccumulation"
              label="Accumulate"
              step={1}
              hint="micro-batches per optimizer step (a larger batch without more memory)"
            />
            <label className="field">
              <span className="label">LR schedule</span>
              <select
                value={settings.lrSchedule}
                data-testid="setting-lrSchedule"
                onChange={(e) =>
                  updateSettings({ lrSchedule: e.target.value as TrainSettings['lrSchedule'] })
                }
              >
                <option value="constant">constant</option>
                <option value="cosine">cosine</option>
              </select>
            </label>
            <NumberField field="warmupSteps" label="Warm-up steps" step={1} />
            <NumberField
              field="minCrop"
              label="Random crop"
              step={0.05}
              hint="smallest crop side as a fraction of the photo; 1 = no crop"
            />
            <label className="field">
              <span className="label">Random flip</span>
              <input
                type="checkbox"
                checked={settings.flip}
                data-testid="setting-flip"
                onChange={(e) => updateSettings({ flip: e.target.checked })}
              />
              <span className="default">off for subjects that are not mirror-symmetric</span>
            </label>
            <label className="field">
              <span className="label">Gradient checkpointing</span>
              <input
                type="checkbox"
                checked={settings.gradientCheckpointing ?? false}
                data-testid="setting-gradientCheckpointing"
                onChange={(e) => updateSettings({ gradientCheckpointing: e.target.checked })}
              />
              <span className="default">
                recompute each block in the backward pass: less GPU memory, slower steps (SD 1.5 at 512 px:
                6.3 → 5.0 GiB)
              </span>
            </label>
          </div>
          <TextField
            field="classPrompt"
            label="Prior preservation: class prompt"
            placeholder="empty = off; e.g. dog"
          >
            the base model draws this many pictures of the class once; training keeps fitting them. Use a
            class the base model already draws well (try it in Generate): its guesses at a class it does not
            know make the subject worse
          </TextField>
          <div className="grid2">
            <NumberField
              field="classImages"
              label="Class images"
              step={1}
              disabled={!settings.classPrompt.trim()}
            />
            <NumberField
              field="priorLossWeight"
              label="Prior weight λ"
              step={0.1}
              disabled={!settings.classPrompt.trim()}
            />
          </div>
          <Issues
            fields={[
              'learningRate',
              'learningRateB',
              'rateLearningRate',
              'initialRank',
              'quantile',
              'batchSize',
              'seed',
              'checkpointEvery',
              'gradientAccumulation',
              'warmupSteps',
              'minCrop',
              'classPrompt',
              'classImages',
              'priorLossWeight',
            ]}
            issues={issues}
          />
          <button
            className="ghost small"
            onClick={() => updateSettings({ ...DEFAULT_TRAIN_SETTINGS, prompt: settings.prompt })}
          >
            Reset to defaults
          </button>
        </details>
      </fieldset>
    </section>
  );
}
