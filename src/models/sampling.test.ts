// sampling.json: a model folder's recommended guidance and steps, checked and defaulted.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MemoryFolder, ModelFolderError } from './folder';
import { BUILT_IN_SAMPLING, readSamplingDefaults } from './sampling';

const folder = (json?: string) =>
  new MemoryFolder(
    'm/',
    new Map(json === undefined ? [] : [['sampling.json', new TextEncoder().encode(json)]]),
  );

describe('sampling.json', () => {
  it('reads guidance and steps, and falls back per key and per folder', async () => {
    expect(
      await readSamplingDefaults(folder('{"guidance": 2, "steps": 30, "recomputeEpsilon": true}')),
    ).toEqual({
      guidance: 2,
      steps: 30,
      recomputeEpsilon: true,
      source: 'sampling.json',
    });
    expect(await readSamplingDefaults(folder('{"guidance": 1.5}'))).toEqual({
      guidance: 1.5,
      steps: BUILT_IN_SAMPLING.steps,
      recomputeEpsilon: false,
      source: 'sampling.json',
    });
    expect(await readSamplingDefaults(folder())).toBe(BUILT_IN_SAMPLING);
    expect(await readSamplingDefaults(folder('{"trainPrompt": "<v1> dog face"}'))).toMatchObject({
      trainPrompt: '<v1> dog face',
      guidance: BUILT_IN_SAMPLING.guidance,
    });
    expect(await readSamplingDefaults(folder('{"steps": 30}'))).not.toHaveProperty('trainPrompt');
  });

  it('refuses bad values with the folder, file and key', async () => {
    for (const [json, pattern] of [
      ['{"guidance": 0.5}', /m\/: sampling.json: "guidance" must be a number from 1 to 30 \(got 0.5\)/],
      ['{"guidance": "2"}', /"guidance" must be a number/],
      ['{"steps": 2.5}', /"steps" must be an integer from 1 to 1000 \(got 2.5\)/],
      ['{"recomputeEpsilon": "yes"}', /"recomputeEpsilon" must be true or false \(got "yes"\)/],
      [
        '{"trainPrompt": "dog face"}',
        /"trainPrompt" must be .* with an identifier token.*\(got "dog face"\)/,
      ],
      ['{"trainPrompt": 3}', /"trainPrompt" must be/],
      ['{"trainPrompt": " <v1> dog"}', /"trainPrompt" must be one line/],
      [`{"trainPrompt": "<v1> ${'a'.repeat(200)}"}`, /at most 200 characters/],
      ['[2]', /must be a JSON object/],
      ['{"guidance": ', /sampling.json: is not valid JSON/],
    ] as const) {
      const err = await readSamplingDefaults(folder(json)).catch((e) => e);
      expect(err).toBeInstanceOf(ModelFolderError);
      expect(err.message).toMatch(pattern);
    }
  });

  it('is shipped with the default model, within the Generate tab slider (1 to 15 in steps of 0.5)', async () => {
    const raw = readFileSync(new URL('../../public/models/emoji-tiny/sampling.json', import.meta.url));
    const s = await readSamplingDefaults(folder(new TextDecoder().decode(raw)));
    expect(s.source).toBe('sampling.json');
    expect(s.guidance).toBeGreaterThanOrEqual(1);
    expect(s.guidance).toBeLessThanOrEqual(15);
    expect(Number.isInteger(s.guidance * 2)).toBe(true);
    // Its example prompt uses the first identifier and a class word the model was trained on, no "photo".
    expect(s.trainPrompt).toMatch(/^<v1> [a-z ]+$/);
    expect(s.trainPrompt).not.toMatch(/photo/);
  });
});
