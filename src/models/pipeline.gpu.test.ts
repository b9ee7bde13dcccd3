// DiffusionModel.load on a small folder (public/models/micro-test) with a sampling.json: the identifier tokens
// its tokenizer reserves, and an example training prompt ("trainPrompt") whose identifier the tokenizer would
// split is refused with the folder, the file and the tokens it does reserve.
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { Engine } from '../tensor/engine';
import { MemoryFolder, ModelFolderError } from './folder';
import { DiffusionModel } from './pipeline';

const DIR = 'public/models/micro-test';

function withSampling(json: string): MemoryFolder {
  const files = new Map(readdirSync(DIR).map((f) => [f, new Uint8Array(readFileSync(`${DIR}/${f}`))]));
  files.set('sampling.json', new TextEncoder().encode(json));
  return new MemoryFolder('micro-test/', files);
}

describe(
  'DiffusionModel.load: identifier tokens and the example training prompt',
  { timeout: 300_000 },
  () => {
    let engine: Engine;
    beforeAll(async () => {
      engine = new Engine(await testGpu());
    });
    afterAll(() => engine?.destroy());

    it('reserves <v1>…<v8> and carries the example prompt', async () => {
      const model = await DiffusionModel.load(engine, withSampling('{"trainPrompt": "<v2> robot face"}'));
      try {
        expect(model.identifierTokens()).toEqual([
          '<v1>',
          '<v2>',
          '<v3>',
          '<v4>',
          '<v5>',
          '<v6>',
          '<v7>',
          '<v8>',
        ]);
        expect(model.sampling.trainPrompt).toBe('<v2> robot face');
      } finally {
        await model.dispose();
      }
    });

    it('refuses an example prompt whose identifier the tokenizer does not keep whole', async () => {
      const err = await DiffusionModel.load(engine, withSampling('{"trainPrompt": "<sks> dog"}')).catch(
        (e) => e,
      );
      expect(err).toBeInstanceOf(ModelFolderError);
      expect(err.message).toMatch(
        /micro-test\/: sampling.json: "trainPrompt" uses <sks>, which the tokenizer does not keep whole \(it reserves <v1>, <v2>/,
      );
    });
  },
);
