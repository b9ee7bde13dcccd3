// Per-photo captions: a photo may train with a prompt of its own ("<v1> dog face, on grass") instead of the
// session's. kohya's convention is read on drop: `name.txt` beside `name.png` is that photo's caption.
import { checkPrompt } from './trainSettings';

/** Longest caption kept (the text encoders read 77 tokens at most; this is well past that). */
export const MAX_CAPTION_CHARS = 1000;

/** A caption as stored: whitespace collapsed (line breaks of a .txt file too), trimmed, length capped. */
export function cleanCaption(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, MAX_CAPTION_CHARS);
}

/** A file name without its extension, lower-cased: `Dog.PNG` and `dog.txt` pair up. */
export function captionStem(name: string): string {
  return name.replace(/\.[^./\\]*$/, '').toLowerCase();
}

export const isCaptionFile = (f: { name: string }) => /\.txt$/i.test(f.name);

/** Largest caption file read (a caption is a line of text; anything bigger is the wrong file). */
export const MAX_CAPTION_FILE_BYTES = 64 * 1024;

/**
 * Splits dropped files into images and the caption files that belong to an image by name (dropped with it, or
 * already in the session as `photoNames`); caption files that match no image are `strays`, those over
 * MAX_CAPTION_FILE_BYTES `tooLarge`.
 */
export function pairCaptionFiles<T extends { name: string; size?: number }>(
  files: readonly T[],
  photoNames: readonly string[] = [],
): { images: T[]; captions: Map<string, T>; strays: T[]; tooLarge: T[] } {
  const images = files.filter((f) => !isCaptionFile(f));
  const stems = new Set([...images, ...photoNames.map((name) => ({ name }))].map((f) => captionStem(f.name)));
  const captions = new Map<string, T>();
  const strays: T[] = [];
  const tooLarge: T[] = [];
  for (const f of files.filter(isCaptionFile)) {
    const stem = captionStem(f.name);
    if (!stems.has(stem) || captions.has(stem)) strays.push(f);
    else if ((f.size ?? 0) > MAX_CAPTION_FILE_BYTES) tooLarge.push(f);
    else captions.set(stem, f);
  }
  return { images, captions, strays, tooLarge };
}

/** The prompt each photo trains with: its own caption, else the session's prompt. */
export function photoPrompts(captions: readonly (string | undefined)[], prompt: string): string[] {
  return captions.map((c) => (c && c.trim() ? cleanCaption(c) : prompt));
}

/** Why a caption cannot train, in words (it needs an identifier, as the prompt does); undefined when it can. */
export function captionProblem(caption: string, reserved?: readonly string[]): string | undefined {
  const error = checkPrompt(caption, reserved).find((i) => i.level === 'error');
  return error?.message.replace(/^The prompt/, 'The caption');
}

/**
 * The trainer's conditioning for photos with these captions: the session prompt's embedding, and per-photo
 * embeddings when any photo has a caption of its own (each distinct prompt encoded once).
 */
export async function promptEmbeddings<E>(
  embed: (prompt: string) => Promise<E>,
  prompt: string,
  captions: readonly (string | undefined)[],
): Promise<{ embedding: E; embeddings?: E[] }> {
  const prompts = photoPrompts(captions, prompt);
  const cache = new Map<string, E>();
  for (const p of [prompt, ...prompts]) if (!cache.has(p)) cache.set(p, await embed(p));
  const embedding = cache.get(prompt)!;
  return prompts.every((p) => p === prompt)
    ? { embedding }
    : { embedding, embeddings: prompts.map((p) => cache.get(p)!) };
}
