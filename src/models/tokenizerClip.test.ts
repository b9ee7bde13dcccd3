// CLIP BPE on a small synthetic vocab/merges whose results are worked out by hand in the comments.
import { describe, expect, it } from 'vitest';
import { TokenizerError } from './tokenizer';
import { CLIP_PATTERN, ClipTokenizer, bytesToUnicode, clipCleanText } from './tokenizerClip';

// Ranks: 0 "e r</w>", 1 "h e", 2 "l l", 3 "he ll", 4 "hell o</w>", 5 "a a", 6 "p h", 7 "ph o", 8 "t o</w>",
// 9 "pho to</w>".
const MERGES = [
  '#version: 0.2',
  'e r</w>',
  'h e',
  'l l',
  'he ll',
  'hell o</w>',
  'a a',
  'p h',
  'ph o',
  't o</w>',
  'pho to</w>',
];
const MERGED = ['er</w>', 'he', 'll', 'hell', 'hello</w>', 'aa', 'ph', 'pho', 'to</w>', 'photo</w>'];

/** Like CLIP's vocab: 256 byte symbols, the same with </w>, merged symbols, then the two specials. */
function makeVocab(drop: string[] = []): Record<string, number> {
  const symbols: string[] = [];
  const bytes = bytesToUnicode();
  symbols.push(...bytes, ...bytes.map((c) => c + '</w>'), ...MERGED, '<|startoftext|>', '<|endoftext|>');
  const vocab: Record<string, number> = {};
  symbols.filter((s) => !drop.includes(s)).forEach((s, i) => (vocab[s] = i));
  return vocab;
}

const vocab = makeVocab();
const tok = new ClipTokenizer(JSON.stringify(vocab), MERGES.join('\n') + '\n');

describe('bytesToUnicode', () => {
  it('keeps printable Latin-1, moves the other 68 bytes to U+0100.. in byte order', () => {
    const t = bytesToUnicode();
    expect(new Set(t).size).toBe(256);
    expect(t[0x21]).toBe('!');
    expect(t[0x7e]).toBe('~');
    expect(t[0xe9]).toBe('é');
    expect(t[0x00]).toBe('\u0100');
    expect(t[0x0a]).toBe('Ċ'); // U+010A
    expect(t[0x20]).toBe('Ġ'); // U+0120: GPT-2's famous space
    expect(t[0x7f]).toBe('\u0121');
    expect(t[0xa0]).toBe('\u0142');
    expect(t[0xad]).toBe('\u0143'); // the last non-printable byte
  });
});

describe('pre-tokenization', () => {
  it("CLIP's regex: contractions, letter runs, single digits, punctuation runs, specials whole", () => {
    const pieces = (s: string) => clipCleanText(s).match(CLIP_PATTERN);
    expect(pieces("A photo of <v1> dog's 3D!! 123")).toEqual([
      'a',
      'photo',
      'of',
      '<',
      'v',
      '1',
      '>',
      'dog',
      "'s",
      '3',
      'd',
      '!!',
      '1',
      '2',
      '3',
    ]);
    expect(pieces('<|startoftext|>hi<|endoftext|>')).toEqual(['<|startoftext|>', 'hi', '<|endoftext|>']);
    expect(clipCleanText('  Hello\n\t  WORLD  ')).toBe('hello world');
  });
});

describe('BPE', () => {
  it('merges lowest rank first, wherever it sits: her -> h + er</w>, not he + r</w>', () => {
    expect(tok.bpe('her')).toEqual(['h', 'er</w>']);
  });

  it('hello: h e (1), then l l (2), then he ll (3), then hell o</w> (4)', () => {
    expect(tok.bpe('hello')).toEqual(['hello</w>']);
    expect(tok.bpe('photo')).toEqual(['photo</w>']);
  });

  it('a merge applies to every occurrence left to right without overlap: aaaa -> aa a a</w>', () => {
    expect(tok.bpe('aaaa')).toEqual(['aa', 'a', 'a</w>']);
    expect(tok.bpe('x')).toEqual(['x</w>']);
  });

  it('multi-byte characters go through the byte table: é is Ã + ©', () => {
    expect(tok.tokenize('é')).toEqual(['Ã', '©</w>']);
  });

  it('maxMerges cuts the merge list', () => {
    const short = new ClipTokenizer(vocab, MERGES.join('\n'), { maxMerges: 2 });
    expect(short.bpe('hello')).toEqual(['he', 'l', 'l', 'o</w>']);
  });
});

describe('encode', () => {
  it('frames BOS + ids + EOS and pads with EOS to 77 (SD 1.5)', () => {
    const p = tok.encode('  Hello   HER\n photo, aaaa! ');
    expect(p.tokens).toEqual(['hello</w>', 'h', 'er</w>', 'photo</w>', ',</w>', 'aa', 'a', 'a</w>', '!</w>']);
    const bos = vocab['<|startoftext|>'];
    const eos = vocab['<|endoftext|>'];
    expect(p.ids.length).toBe(77);
    expect([...p.ids.slice(0, 12)]).toEqual([bos, ...p.tokens.map((t) => vocab[t]), eos, eos]);
    expect(p.ids.slice(11).every((id) => id === eos)).toBe(true);
    expect(p.length).toBe(11);
    expect(tok.bosId).toBe(bos);
  });

  it('truncates to maxLength - 2 symbols and keeps EOS last; pad is configurable', () => {
    const t = new ClipTokenizer(vocab, MERGES.join('\n'), { maxLength: 6, pad: '!' });
    const p = t.encode('x x x x x x x');
    expect(p.truncated).toBe(true);
    expect([...p.ids]).toEqual([
      vocab['<|startoftext|>'],
      ...Array(4).fill(vocab['x</w>']),
      vocab['<|endoftext|>'],
    ]);
    expect([...t.encode('x').ids]).toEqual([
      vocab['<|startoftext|>'],
      vocab['x</w>'],
      vocab['<|endoftext|>'],
      vocab['!'],
      vocab['!'],
      vocab['!'],
    ]);
    expect(new ClipTokenizer(vocab, '', { pad: 0 }).padId).toBe(0);
  });

  it('symbols missing from the vocab become <|endoftext|> (CLIP unk)', () => {
    const t = new ClipTokenizer(makeVocab(['z</w>']), MERGES.join('\n'));
    const eos = t.eosId;
    expect([...t.encode('z').ids.slice(0, 3)]).toEqual([t.bosId, eos, eos]);
  });

  it('refuses broken files', () => {
    expect(() => new ClipTokenizer('{', '')).toThrow(TokenizerError);
    expect(() => new ClipTokenizer(vocab, '#version: 0.2\na b c')).toThrow(/merges\.txt: line 2/);
    expect(() => new ClipTokenizer({ a: 0 }, '')).toThrow(/bos/);
  });
});
