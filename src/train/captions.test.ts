// Per-photo captions: cleaning, kohya's name.txt pairing, which prompt each photo trains with, the identifier
// check, and the embeddings handed to the trainer (each distinct prompt encoded once).
import { describe, expect, it } from 'vitest';
import {
  captionProblem,
  captionStem,
  cleanCaption,
  MAX_CAPTION_CHARS,
  MAX_CAPTION_FILE_BYTES,
  pairCaptionFiles,
  photoPrompts,
  promptEmbeddings,
} from './captions';
import { batchConditioning } from './trainer';

describe('captions', () => {
  it('collapse whitespace and line breaks, trim, and cap their length', () => {
    expect(cleanCaption('  <v1> dog face,\r\n  on grass\t')).toBe('<v1> dog face, on grass');
    expect(cleanCaption('x'.repeat(MAX_CAPTION_CHARS + 5))).toHaveLength(MAX_CAPTION_CHARS);
  });

  it('pair name.txt with the photo of the same name (dropped with it or already there), case aside', () => {
    const f = (name: string) => ({ name });
    const { images, captions, strays } = pairCaptionFiles(
      [f('Dog.PNG'), f('dog.txt'), f('cat.jpg'), f('old.TXT'), f('notes.txt'), f('a.b.webp'), f('a.b.txt')],
      ['old.png'],
    );
    expect(images.map((i) => i.name)).toEqual(['Dog.PNG', 'cat.jpg', 'a.b.webp']);
    expect([...captions].map(([stem, file]) => `${stem}=${file.name}`)).toEqual([
      'dog=dog.txt',
      'old=old.TXT',
      'a.b=a.b.txt',
    ]);
    expect(strays.map((s) => s.name)).toEqual(['notes.txt']);
    // A caption file the size of a document is the wrong file: named, not read.
    const big = pairCaptionFiles([f('a.png'), { name: 'a.txt', size: MAX_CAPTION_FILE_BYTES + 1 }]);
    expect([big.captions.size, big.tooLarge.map((t) => t.name)]).toEqual([0, ['a.txt']]);
    expect(captionStem('My Dog.JPEG')).toBe('my dog');
  });

  it("train each photo with its caption, else the session's prompt", () => {
    expect(photoPrompts(['<v1> dog, grass', undefined, '  ', ' <v1>  dog '], '<v1> dog')).toEqual([
      '<v1> dog, grass',
      '<v1> dog',
      '<v1> dog',
      '<v1> dog',
    ]);
  });

  it('need an identifier the model reserves, as the prompt does', () => {
    expect(captionProblem('<v1> dog face, on grass', ['<v1>', '<v2>'])).toBeUndefined();
    expect(captionProblem('a dog on grass')).toMatch(/^The caption needs an identifier token/);
    expect(captionProblem('<v9> dog', ['<v1>', '<v2>'])).toMatch(
      /<v9> is not an identifier this model reserves/,
    );
    // A missing class word is advice for the prompt field, not a reason to refuse a caption.
    expect(captionProblem('<v1>')).toBeUndefined();
  });

  it('give the trainer per-photo embeddings only when a caption differs, each prompt encoded once', async () => {
    const calls: string[] = [];
    const embed = async (p: string) => {
      calls.push(p);
      return `E(${p})`;
    };
    expect(await promptEmbeddings(embed, '<v1> dog', [undefined, '', '<v1> dog'])).toEqual({
      embedding: 'E(<v1> dog)',
    });
    expect(calls).toEqual(['<v1> dog']);
    calls.length = 0;
    expect(
      await promptEmbeddings(embed, '<v1> dog', ['<v1> dog, grass', undefined, '<v1> dog, grass']),
    ).toEqual({
      embedding: 'E(<v1> dog)',
      embeddings: ['E(<v1> dog, grass)', 'E(<v1> dog)', 'E(<v1> dog, grass)'],
    });
    expect(calls).toEqual(['<v1> dog', '<v1> dog, grass']);
  });

  it("condition each batch row on its drawn photo's embedding", () => {
    const e = (v: number) => ({
      data: new Float32Array(4).fill(v),
      shape: [1, 2, 2] as [number, number, number],
    });
    expect(Array.from(batchConditioning([e(1), e(2), e(3)], [2, 0, 2]))).toEqual([
      3, 3, 3, 3, 1, 1, 1, 1, 3, 3, 3, 3,
    ]);
  });
});
