// Prompt tokenizers behind one interface: the word-level tokenizer of the embedded default model
// (tokenizer.json, written by tools/reference) and, in tokenizerClip.ts, CLIP's byte-level BPE for SD-class
// models. Both give a fixed-length id sequence: BOS, tokens, EOS, then padding.

export interface TokenizedPrompt {
  /** maxLength ids: BOS, tokens, EOS, padding. */
  ids: Int32Array;
  /** Ids before padding (BOS and EOS included). */
  length: number;
  /** The token strings between BOS and EOS, after truncation. */
  tokens: string[];
  /** True when the prompt had more tokens than fit. */
  truncated: boolean;
}

export interface Tokenizer {
  readonly maxLength: number;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  encode(text: string): TokenizedPrompt;
}

export class TokenizerError extends Error {
  constructor(
    /** The field or file at fault. */
    readonly field: string,
    message: string,
  ) {
    super(`tokenizer: ${field}: ${message}`);
    this.name = 'TokenizerError';
  }
}

/** Lays out BOS + tokens (cut to fit) + EOS + padding; shared by both tokenizers. */
export function frame(
  tokens: string[],
  ids: number[],
  t: Pick<Tokenizer, 'maxLength' | 'bosId' | 'eosId' | 'padId'>,
): TokenizedPrompt {
  const room = t.maxLength - 2;
  const truncated = ids.length > room;
  const kept = truncated ? ids.slice(0, room) : ids;
  const out = new Int32Array(t.maxLength).fill(t.padId);
  out[0] = t.bosId;
  out.set(kept, 1);
  out[kept.length + 1] = t.eosId;
  return { ids: out, length: kept.length + 2, tokens: truncated ? tokens.slice(0, room) : tokens, truncated };
}

/** tokenizer.json of the embedded model. Special tokens may be given as token strings or as ids. */
export interface WordTokenizerJson {
  type: 'word';
  vocab: Record<string, number>;
  bos: string | number;
  eos: string | number;
  pad: string | number;
  unk: string | number;
  max_length: number;
  lowercase?: boolean;
}

/**
 * Words are maximal runs of Unicode letters and digits (`[\p{L}\p{N}]+`, Python: `[^\W_]+`); everything
 * else separates them and is dropped, except identifier tokens `<v1>`…`<v8>`, which stay whole.
 */
export const WORD_PATTERN = /<v[1-8]>|[\p{L}\p{N}]+/gu;

export class WordTokenizer implements Tokenizer {
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly lowercase: boolean;
  private readonly vocab: Map<string, number>;

  constructor(json: unknown) {
    if (typeof json !== 'object' || json === null)
      throw new TokenizerError('tokenizer.json', 'not a JSON object');
    const j = json as Partial<WordTokenizerJson>;
    if (j.type !== 'word') throw new TokenizerError('type', `${JSON.stringify(j.type)} is not "word"`);
    if (typeof j.vocab !== 'object' || j.vocab === null)
      throw new TokenizerError('vocab', 'missing or not an object');
    this.vocab = new Map();
    const seen = new Map<number, string>();
    for (const [token, id] of Object.entries(j.vocab)) {
      if (!Number.isSafeInteger(id) || id < 0)
        throw new TokenizerError('vocab', `id of "${token}" is ${JSON.stringify(id)}`);
      if (seen.has(id)) throw new TokenizerError('vocab', `"${token}" and "${seen.get(id)}" share id ${id}`);
      seen.set(id, token);
      this.vocab.set(token, id);
    }
    const special = (field: 'bos' | 'eos' | 'pad' | 'unk'): number => {
      const v = j[field];
      if (typeof v === 'number' && seen.has(v)) return v;
      if (typeof v === 'string' && this.vocab.has(v)) return this.vocab.get(v)!;
      throw new TokenizerError(field, `${JSON.stringify(v)} is not a token or id in the vocab`);
    };
    this.bosId = special('bos');
    this.eosId = special('eos');
    this.padId = special('pad');
    this.unkId = special('unk');
    if (!Number.isSafeInteger(j.max_length) || j.max_length! < 2) {
      throw new TokenizerError(
        'max_length',
        `${JSON.stringify(j.max_length)} must be an integer >= 2 (BOS and EOS)`,
      );
    }
    this.maxLength = j.max_length!;
    if (j.lowercase !== undefined && typeof j.lowercase !== 'boolean') {
      throw new TokenizerError('lowercase', `${JSON.stringify(j.lowercase)} is not true or false`);
    }
    this.lowercase = j.lowercase ?? true;
  }

  get vocabSize(): number {
    return this.vocab.size;
  }

  /** The word strings of a prompt, before vocabulary lookup. */
  split(text: string): string[] {
    return (this.lowercase ? text.toLowerCase() : text).match(WORD_PATTERN) ?? [];
  }

  encode(text: string): TokenizedPrompt {
    const tokens = this.split(text);
    return frame(
      tokens,
      tokens.map((t) => this.vocab.get(t) ?? this.unkId),
      this,
    );
  }
}
