// Tokenizer discovery in a model folder: word-level tokenizer.json, CLIP files in the diffusers layout, pad token.
import { describe, expect, it } from 'vitest';
import { MemoryFolder } from './folder';
import { TokenizerError, WordTokenizer } from './tokenizer';
import { ClipTokenizer } from './tokenizerClip';
import { loadTokenizer } from './tokenizerFolder';

const enc = (s: string) => new TextEncoder().encode(s);
const folder = (files: Record<string, string>) =>
  new MemoryFolder('test', new Map(Object.entries(files).map(([k, v]) => [k, enc(v)])));

const clipVocab = JSON.stringify({ '!': 0, 'a</w>': 1, '<|startoftext|>': 2, '<|endoftext|>': 3 });

describe('loadTokenizer', () => {
  it('word-level tokenizer.json at the top', async () => {
    const t = await loadTokenizer(
      folder({
        'tokenizer.json': JSON.stringify({
          type: 'word-level',
          vocab: ['<pad>', '<bos>', '<eos>', '<unk>', 'a'],
          pad_id: 0,
          bos_id: 1,
          eos_id: 2,
          unk_id: 3,
          max_length: 5,
        }),
      }),
    );
    expect(t).toBeInstanceOf(WordTokenizer);
    expect([...t.encode('a b').ids]).toEqual([1, 4, 3, 2, 0]);
  });

  it('CLIP files under tokenizer/, pad token and length from the HF side files', async () => {
    const t = await loadTokenizer(
      folder({
        'tokenizer/vocab.json': clipVocab,
        'tokenizer/merges.txt': '#version: 0.2\n',
        'tokenizer/special_tokens_map.json': JSON.stringify({ pad_token: '!' }),
        'tokenizer/tokenizer_config.json': JSON.stringify({ model_max_length: 5 }),
      }),
    );
    expect(t).toBeInstanceOf(ClipTokenizer);
    expect([...t.encode('a').ids]).toEqual([2, 1, 3, 0, 0]);
  });

  it('SD 1.x: pad_token given as {content}, a huge model_max_length is ignored', async () => {
    const t = await loadTokenizer(
      folder({
        'vocab.json': clipVocab,
        'merges.txt': '',
        'special_tokens_map.json': JSON.stringify({ pad_token: { content: '<|endoftext|>' } }),
        'tokenizer_config.json': JSON.stringify({ model_max_length: 1e30 }),
      }),
    );
    expect(t.maxLength).toBe(77);
    expect(t.padId).toBe(3);
  });

  it('says what is missing', async () => {
    await expect(loadTokenizer(folder({}))).rejects.toThrow(/no tokenizer found/);
    await expect(
      loadTokenizer(folder({ 'tokenizer.json': JSON.stringify({ model: { type: 'Unigram' } }) })),
    ).rejects.toThrow(TokenizerError);
  });
});
