// Picks and loads a model folder's tokenizer: the embedded model's word-level tokenizer.json, or CLIP's
// vocab.json + merges.txt (diffusers layout under tokenizer/, or at the top), with the pad token taken from
// special_tokens_map.json when present (SD 2.x pads with "!", SD 1.x with <|endoftext|>).
import type { ModelFolder } from './folder';
import { TokenizerError, WordTokenizer, type Tokenizer } from './tokenizer';
import { ClipTokenizer } from './tokenizerClip';

/** special_tokens_map.json / tokenizer_config.json give tokens as strings or as {content: string}. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

export async function loadTokenizer(folder: ModelFolder): Promise<Tokenizer> {
  for (const dir of ['', 'tokenizer/']) {
    const json = `${dir}tokenizer.json`;
    if (await folder.has(json)) {
      const t = await folder.json<{ type?: unknown; model?: { type?: unknown } }>(json);
      if (t.type === 'word-level' || t.type === 'word') return new WordTokenizer(t);
      // An HF "fast" tokenizer.json: CLIP folders carry vocab.json + merges.txt beside it, used below.
      if (!(await folder.has(`${dir}vocab.json`))) {
        throw new TokenizerError(json, `type ${JSON.stringify(t.type ?? t.model?.type)} is not supported`);
      }
    }
    if ((await folder.has(`${dir}vocab.json`)) && (await folder.has(`${dir}merges.txt`))) {
      let pad: string | undefined;
      if (await folder.has(`${dir}special_tokens_map.json`)) {
        pad = tokenContent(
          (await folder.json<Record<string, unknown>>(`${dir}special_tokens_map.json`)).pad_token,
        );
      }
      let maxLength: number | undefined;
      if (await folder.has(`${dir}tokenizer_config.json`)) {
        const cfg = await folder.json<Record<string, unknown>>(`${dir}tokenizer_config.json`);
        const m = cfg.model_max_length;
        if (typeof m === 'number' && Number.isSafeInteger(m) && m >= 2 && m <= 4096) maxLength = m;
      }
      return new ClipTokenizer(await folder.text(`${dir}vocab.json`), await folder.text(`${dir}merges.txt`), {
        pad,
        maxLength,
      });
    }
  }
  throw new TokenizerError(
    folder.name,
    'no tokenizer found (tokenizer.json, or vocab.json + merges.txt at the top or under tokenizer/)',
  );
}
