// Word-level tokenizer of the embedded model: ids equal to tools/reference/text.py's on tricky prompts,
// splitting, identifier tokens, framing, truncation, errors.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TokenizerError, WordTokenizer, type WordTokenizerJson } from './tokenizer';

const golden = JSON.parse(
  readFileSync(new URL('./fixtures/word-tokenizer-golden.json', import.meta.url), 'utf8'),
) as { tokenizer: Record<string, unknown>; cases: { text: string; ids: number[] }[] };

const json: WordTokenizerJson = {
  type: 'word',
  vocab: {
    '<pad>': 0,
    '<bos>': 1,
    '<eos>': 2,
    '<unk>': 3,
    a: 4,
    photo: 5,
    of: 6,
    '<v1>': 7,
    dog: 8,
    face: 9,
    '2': 10,
  },
  bos: '<bos>',
  eos: '<eos>',
  pad: '<pad>',
  unk: '<unk>',
  max_length: 8,
  lowercase: true,
};

function field(make: () => unknown): string {
  try {
    make();
  } catch (e) {
    expect(e).toBeInstanceOf(TokenizerError);
    return (e as TokenizerError).field;
  }
  throw new Error('no error');
}

describe('WordTokenizer against the Python reference', () => {
  const tok = new WordTokenizer(golden.tokenizer);

  it('encodes every golden prompt to exactly the ids text.py produced', () => {
    expect(golden.cases.length).toBeGreaterThan(5);
    for (const c of golden.cases) expect([c.text, [...tok.encode(c.text).ids]]).toEqual([c.text, c.ids]);
  });

  it('reads the word-level form: list vocab, *_id specials', () => {
    expect(tok.vocabSize).toBe((golden.tokenizer.vocab as string[]).length);
    expect([tok.padId, tok.bosId, tok.eosId, tok.unkId]).toEqual([
      golden.tokenizer.pad_id,
      golden.tokenizer.bos_id,
      golden.tokenizer.eos_id,
      golden.tokenizer.unk_id,
    ]);
    expect(tok.maxLength).toBe(golden.tokenizer.max_length);
    expect(field(() => new WordTokenizer({ ...golden.tokenizer, eos_id: 999 }))).toBe('eos_id');
    expect(field(() => new WordTokenizer({ ...golden.tokenizer, vocab: ['a', 'a'] }))).toBe('vocab');
    expect(field(() => new WordTokenizer({ ...golden.tokenizer, pattern: '(' }))).toBe('pattern');
  });
});

describe('WordTokenizer', () => {
  const tok = new WordTokenizer(json);

  it('lowercases, splits on non-alphanumerics, keeps <v1> whole, frames with BOS/EOS/pad', () => {
    const p = tok.encode('A photo of <V1> Dog!');
    expect(p.tokens).toEqual(['a', 'photo', 'of', '<v1>', 'dog']);
    expect([...p.ids]).toEqual([1, 4, 5, 6, 7, 8, 2, 0]);
    expect(p.length).toBe(7);
    expect(p.truncated).toBe(false);
  });

  it('unknown words and non-identifier brackets map to unk; underscores, dashes and colons separate', () => {
    expect(tok.split('dog_face-2:<v9> (café)')).toEqual(['dog', 'face', '2', 'v9', 'caf']);
    expect([...tok.encode('<v9> cat').ids]).toEqual([1, 3, 3, 2, 0, 0, 0, 0]);
    expect([...tok.encode('').ids]).toEqual([1, 2, 0, 0, 0, 0, 0, 0]);
  });

  it('truncates to max_length - 2 tokens, EOS always last', () => {
    const p = tok.encode('a a a a a a a a a');
    expect([...p.ids]).toEqual([1, 4, 4, 4, 4, 4, 4, 2]);
    expect(p.truncated).toBe(true);
    expect(p.tokens.length).toBe(6);
  });

  it('special tokens may be ids; lowercase can be off', () => {
    const t = new WordTokenizer({
      ...json,
      bos: 1,
      eos: 2,
      pad: 2,
      unk: 3,
      lowercase: false,
      pattern: '[A-Za-z]+',
    });
    expect([...t.encode('Dog dog').ids]).toEqual([1, 3, 8, 2, 2, 2, 2, 2]);
    expect(t.vocabSize).toBe(11);
  });

  it('refuses malformed files naming the field', () => {
    expect(field(() => new WordTokenizer({ ...json, type: 'bpe' }))).toBe('type');
    expect(field(() => new WordTokenizer({ ...json, bos: '<s>' }))).toBe('bos');
    expect(field(() => new WordTokenizer({ ...json, unk: 99 }))).toBe('unk');
    expect(field(() => new WordTokenizer({ ...json, vocab: { ...json.vocab, cat: 4 } }))).toBe('vocab');
    expect(field(() => new WordTokenizer({ ...json, max_length: 1 }))).toBe('max_length');
    expect(field(() => new WordTokenizer(null))).toBe('tokenizer.json');
  });
});
