// CLIP's byte-level BPE tokenizer (openai/CLIP simple_tokenizer, as HF CLIPTokenizer runs it) from a
// model's own vocab.json + merges.txt: text cleanup, CLIP's pre-tokenization regex, bytes mapped to
// printable characters, `</w>` marking word ends, merges applied lowest rank first.
import { TokenizerError, frame, type TokenizedPrompt, type Tokenizer } from './tokenizer';

export const CLIP_BOS = '<|startoftext|>';
export const CLIP_EOS = '<|endoftext|>';
/** openai/CLIP keeps the first 49152 - 256 - 2 merges of its BPE file; HF CLIPTokenizer does the same. */
export const CLIP_MAX_MERGES = 49152 - 256 - 2;

/** CLIP's pre-tokenizer (re.IGNORECASE in the original; the text is lowercased first anyway). */
export const CLIP_PATTERN =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

/**
 * GPT-2/CLIP byte -> character table: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100 onwards in byte order, so every byte string becomes a string of visible characters.
 */
export function bytesToUnicode(): string[] {
  const table = new Array<string>(256);
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : next++);
  return table;
}

/** ftfy/html unescaping are not reproduced: NFC, whitespace runs to one space, trim, lowercase. */
export function clipCleanText(text: string): string {
  return text.normalize('NFC').replace(/\s+/g, ' ').trim().toLowerCase();
}

export interface ClipTokenizerOptions {
  /** Sequence length, 77 for every CLIP text encoder. */
  maxLength?: number;
  /** Padding token (string or id). SD 1.x pads with <|endoftext|> (the default); SD 2.x with "!" (id 0). */
  pad?: string | number;
  /** How many merges of merges.txt to use (CLIP_MAX_MERGES, as HF). */
  maxMerges?: number;
}

export class ClipTokenizer implements Tokenizer {
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  private readonly encoder: Map<string, number>;
  private readonly ranks = new Map<string, number>();
  private readonly byteChars = bytesToUnicode();
  private readonly cache = new Map<string, string[]>();

  /** vocab.json (token -> id) and merges.txt ("a b" per line, optional "#version" first line). */
  constructor(vocab: Record<string, number> | string, merges: string, options: ClipTokenizerOptions = {}) {
    let v: unknown = vocab;
    if (typeof vocab === 'string') {
      try {
        v = JSON.parse(vocab);
      } catch (e) {
        throw new TokenizerError('vocab.json', `not valid JSON (${(e as Error).message})`);
      }
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new TokenizerError('vocab.json', 'not an object');
    this.encoder = new Map(Object.entries(v as Record<string, number>));
    for (const [t, id] of this.encoder) {
      if (!Number.isSafeInteger(id) || id < 0)
        throw new TokenizerError('vocab.json', `id of "${t}" is ${JSON.stringify(id)}`);
    }

    const lines = merges.split(/\r?\n/);
    const firstLine = lines[0]?.startsWith('#version') ? (lines.shift(), 2) : 1;
    const maxMerges = options.maxMerges ?? CLIP_MAX_MERGES;
    for (const [i, line] of lines.entries()) {
      if (this.ranks.size >= maxMerges) break;
      if (line.trim() === '') continue;
      const parts = line.split(' ');
      if (parts.length !== 2 || !parts[0] || !parts[1]) {
        throw new TokenizerError(
          'merges.txt',
          `line ${i + firstLine} is not a pair of symbols: ${JSON.stringify(line)}`,
        );
      }
      const key = `${parts[0]} ${parts[1]}`;
      if (!this.ranks.has(key)) this.ranks.set(key, this.ranks.size);
    }

    const id = (field: string, token: string | number): number => {
      if (typeof token === 'number' && Number.isSafeInteger(token) && token >= 0) return token;
      const found = typeof token === 'string' ? this.encoder.get(token) : undefined;
      if (found === undefined)
        throw new TokenizerError(field, `${JSON.stringify(token)} is not in vocab.json`);
      return found;
    };
    this.bosId = id('bos', CLIP_BOS);
    this.eosId = id('eos', CLIP_EOS);
    this.padId = id('pad', options.pad ?? CLIP_EOS);
    this.maxLength = options.maxLength ?? 77;
    if (!Number.isSafeInteger(this.maxLength) || this.maxLength < 2) {
      throw new TokenizerError('maxLength', `${this.maxLength} must be an integer >= 2`);
    }
  }

  get vocabSize(): number {
    return this.encoder.size;
  }

  /** BPE of one pre-token (already byte-mapped): the merged symbols, the last one ending in `</w>`. */
  bpe(token: string): string[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    const chars = [...token];
    let word = [...chars.slice(0, -1), chars[chars.length - 1] + '</w>'];
    while (word.length > 1) {
      // The adjacent pair with the lowest merge rank goes first, wherever it is in the word.
      let best: string | undefined;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const rank = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = `${word[i]} ${word[i + 1]}`;
        }
      }
      if (best === undefined) break;
      const [first, second] = best.split(' ');
      // Merge every occurrence, scanning left to right without overlap (as the reference does).
      const merged: string[] = [];
      for (let i = 0; i < word.length;) {
        if (word[i] === first && i < word.length - 1 && word[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else merged.push(word[i++]);
      }
      word = merged;
    }
    this.cache.set(token, word);
    return word;
  }

  /** The BPE symbols of a prompt, before vocabulary lookup (special tokens stay whole). */
  tokenize(text: string): string[] {
    const out: string[] = [];
    const utf8 = new TextEncoder();
    for (const piece of clipCleanText(text).match(CLIP_PATTERN) ?? []) {
      if (piece === CLIP_BOS || piece === CLIP_EOS) {
        out.push(piece);
        continue;
      }
      let mapped = '';
      for (const b of utf8.encode(piece)) mapped += this.byteChars[b];
      out.push(...this.bpe(mapped));
    }
    return out;
  }

  encode(text: string): TokenizedPrompt {
    const tokens = this.tokenize(text);
    // Symbols missing from vocab.json become <|endoftext|>, CLIP's unk token.
    return frame(
      tokens,
      tokens.map((t) => this.encoder.get(t) ?? this.eosId),
      this,
    );
  }
}
