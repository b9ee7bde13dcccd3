// Model folders: every failure names the folder and the file.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryFolder, ModelFolderError, UrlFolder } from './folder';
import { DirectoryFolder } from './folderNode';

describe('model folders', () => {
  it('reads files from a directory and names a missing one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lora2-folder-'));
    writeFileSync(join(dir, 'config.json'), '{"in_channels": 3}');
    writeFileSync(join(dir, 'bad.json'), '{"in_channels": ');
    const f = new DirectoryFolder(dir);
    expect(await f.json('config.json')).toEqual({ in_channels: 3 });
    expect(await f.has('unet.safetensors')).toBe(false);
    const err = await f.bytes('unet.safetensors').catch((e) => e);
    expect(err).toBeInstanceOf(ModelFolderError);
    expect(err.message).toContain('unet.safetensors: missing from the model folder');
    await expect(f.json('bad.json')).rejects.toThrow(/bad.json: is not valid JSON/);
    const src = await f.source('config.json');
    expect(src.size).toBe(18);
    expect(new TextDecoder().decode(await src.read(2, 11))).toBe('in_channels');
  });

  it('reports HTTP failures of a URL folder', async () => {
    const fake = (async (url: string) =>
      String(url).endsWith('config.json')
        ? new Response('{"a":1}')
        : new Response('nope', { status: 404 })) as unknown as typeof fetch;
    const f = new UrlFolder('http://example.test/models/tiny', fake);
    expect(await f.json('config.json')).toEqual({ a: 1 });
    const spa = new UrlFolder(
      'http://example.test/m/',
      (async () =>
        new Response('<!doctype html>', {
          headers: { 'content-type': 'text/html' },
        })) as unknown as typeof fetch,
    );
    expect(await spa.has('vae_decoder.onnx')).toBe(false);
    await expect(spa.bytes('config.json')).rejects.toThrow(/missing/);
    await expect(f.bytes('unet.safetensors')).rejects.toThrow(
      /unet.safetensors: missing from the model folder \(HTTP 404\)/,
    );
    const offline = new UrlFolder('http://example.test/m/', (async () => {
      throw new TypeError('Failed to fetch');
    }) as unknown as typeof fetch);
    await expect(offline.bytes('config.json')).rejects.toThrow(/offline/);
  });

  it('serves in-memory files', async () => {
    const f = new MemoryFolder('mem', new Map([['x.txt', new TextEncoder().encode('hi')]]));
    expect(await f.text('x.txt')).toBe('hi');
    await expect(f.text('y.txt')).rejects.toThrow(/mem: y.txt/);
  });
});
