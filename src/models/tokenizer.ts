// Prompt tokenizers behind one interface: the word-level tokenizer of the embedded default model
// (tokenizer.json, written by tools/reference/text.py) and, in tokenizerClip.ts, CLIP's byte-level BPE for SD-class
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

/**
 * tokenizer.json of the embedded model as tools/reference/text.py writes it: `vocab` is the token list
 * (index = id), special tokens as ids, and the split `pattern` both sides use.
 */
export interface WordLevelTokenizerJson {
  type: 'word-level';
  version?: number;
  vocab: string[];
  pad_id: number;
  bos_id: number;
  eos_id: number;
  unk_id: number;
  max_length: number;
  lowercase?: boolean;
  pattern?: string;
}

/** The same tokenizer with a token -> id map and special tokens as strings or ids. */
export interface WordTokenizerJson {
  type: 'word';
  vocab: Record<string, number>;
  bos: string | number;
  eos: string | number;
  pad: string | number;
  unk: string | number;
  max_length: number;
  lowercase?: boolean;
  pattern?: string;
}

/**
 * tools/reference/text.py's TOKEN_RE: identifier tokens `<v1>`…`<v8>` whole, otherwise runs of ASCII
 * [a-z0-9] (after lowercasing); everything else, non-ASCII letters included, separates tokens.
 */
export const WORD_PATTERN = '<v[1-8]>|[a-z0-9]+';

export class WordTokenizer implements Tokenizer {
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly lowercase: boolean;
  readonly pattern: RegExp;
  private readonly vocab = new Map<string, number>();

  /** Either tokenizer.json form (parsed JSON). */
  constructor(json: unknown) {
    if (typeof json !== 'object' || json === null)
      throw new TokenizerError('tokenizer.json', 'not a JSON object');
    const j = json as Record<string, unknown>;
    const ids = new Map<number, string>();
    const add = (token: string, id: unknown) => {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
        throw new TokenizerError('vocab', `id of "${token}" is ${JSON.stringify(id)}`);
      }
      if (ids.has(id)) throw new TokenizerError('vocab', `"${token}" and "${ids.get(id)}" share id ${id}`);
      if (this.vocab.has(token)) throw new TokenizerError('vocab', `"${token}" appears twice`);
      ids.set(id, token);
      this.vocab.set(token, id);
    };
    let special: (field: 'bos' | 'eos' | 'pad' | 'unk') => number;
    if (j.type === 'word-level') {
      if (!Array.isArray(j.vocab) || !j.vocab.every((t) => typeof t === 'string')) {
        throw new TokenizerError('vocab', 'not a list of token strings');
      }
      j.vocab.forEach((token: string, id) => add(token, id));
      special = (field) => {
        const v = j[`${field}_id`];
        if (typeof v === 'number' && ids.has(v)) return v;
        throw new TokenizerError(`${field}_id`, `${JSON.stringify(v)} is not an id in the vocab`);
      };
    } else if (j.type === 'word') {
      if (typeof j.vocab !== 'object' || j.vocab === null || Array.isArray(j.vocab)) {
        throw new TokenizerError('vocab', 'not an object of token -> id');
      }
      for (const [token, id] of Object.entries(j.vocab)) add(token, id);
      special = (field) => {
        const v = j[field];
        if (typeof v === 'number' && ids.has(v)) return v;
        if (typeof v === 'string' && this.vocab.has(v)) return this.vocab.get(v)!;
        throw new TokenizerError(field, `${JSON.stringify(v)} is not a token or id in the vocab`);
      };
    } else {
      throw new TokenizerError('type', `${JSON.stringify(j.type)} is not "word-level" (or "word")`);
    }
    this.bosId = special('bos');
    this.eosId = special('eos');
    this.padId = special('pad');
    this.unkId = special('unk');

    const maxLength = j.max_length;
    if (typeof maxLength !== 'number' || !Number.isSafeInteger(maxLength) || maxLength < 2) {
      throw new TokenizerError(
        'max_length',
        `${JSON.stringify(maxLength)} must be an integer >= 2 (BOS and EOS)`,
      );
    }
    this.maxLength = maxLength;
    if (j.lowercase !== undefined && typeof j.lowercase !== 'boolean') {
      throw new TokenizerError('lowercase', `${JSON.stringify(j.lowercase)} is not true or false`);
    }
    this.lowercase = j.lowercase ?? true;
    // The file's own pattern, so a change on the Python side cannot silently diverge. It must use syntax
    // that means the same in Python `re` and JS `u` regexes (explicit classes, no \w).
    const pattern = j.pattern ?? WORD_PATTERN;
    if (typeof pattern !== 'string') throw new TokenizerError('pattern', 'not a string');
    try {
      this.pattern = new RegExp(pattern, 'gu');
    } catch (e) {
      throw new TokenizerError('pattern', `not a valid regular expression (${(e as Error).message})`);
    }
  }

  get vocabSize(): number {
    return this.vocab.size;
  }

  /** The word strings of a prompt, before vocabulary lookup. */
  split(text: string): string[] {
    return (this.lowercase ? text.toLowerCase() : text).match(this.pattern) ?? [];
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
