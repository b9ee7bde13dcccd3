// Session store on an in-memory key/value store: schema migration of an old fixture, atomic photo/sample
// pointers, sizes and delete with the trainer's checkpoints, the full-disk message, whole-session files.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classImageKey } from './classImages';
import { DEFAULT_TRAIN_SETTINGS } from './trainSettings';
import {
  blockOfLayer,
  memoryKeyValueStore,
  migrateSession,
  parseClassImageKey,
  requestedModelUrl,
  SCHEMA_VERSION,
  SchemaTooNewError,
  SessionStore,
  StorageFullError,
  storeKeys,
  valueBytes,
} from './sessionStore';

const fixture = JSON.parse(readFileSync(new URL('./testdata/session-v1.json', import.meta.url), 'utf8'));
const png = (n: number) => new Blob([new Uint8Array(n)], { type: 'image/png' });
const photo = (name: string, bytes = 100) => ({
  name,
  type: 'image/png',
  width: 80,
  height: 90,
  blob: png(bytes),
});

function storeWithFixture() {
  const kv = memoryKeyValueStore();
  for (const [k, v] of Object.entries(fixture)) if (k !== 'comment') kv.data.set(k, v);
  kv.data.set('photo:k2v1old:0', { name: 'rex1.jpg', blob: png(300) });
  kv.data.set('photo:k2v1old:1', { name: 'rex2.jpg', blob: png(200) });
  return { kv, store: new SessionStore(kv, { now: () => 1_720_000_000_000 }) };
}

describe('session schema migration', () => {
  it('reads a schema-1 session with its settings renamed and defaults filled in', async () => {
    const { kv, store } = storeWithFixture();
    const s = await store.get('k2v1old');
    expect(s).toMatchObject({
      schemaVersion: SCHEMA_VERSION,
      id: 'k2v1old',
      name: 'Rex the dog',
      createdAt: 1718000000000,
      updatedAt: 1718000900000,
      state: 'paused',
      step: 120,
      photos: [0, 1],
      nextPhoto: 2,
      samples: [],
    });
    expect(s!.settings).toEqual({
      ...DEFAULT_TRAIN_SETTINGS,
      prompt: 'a photo of <v1> dog',
      steps: 300,
      learningRate: 0.002,
      // Schema 1 had one rate for A and B.
      learningRateB: 0.002,
      maxRank: 32,
      priorSigma: 0.35,
      fixedRank: 8,
      seed: 42,
    });
    // Written back once in the new schema.
    expect((kv.data.get('session:k2v1old') as { schemaVersion: number }).schemaVersion).toBe(SCHEMA_VERSION);
    const photos = await store.photos('k2v1old');
    expect(photos.map((p) => [p.n, p.photo.name, p.photo.blob.size, p.photo.width])).toEqual([
      [0, 'rex1.jpg', 300, 0],
      [1, 'rex2.jpg', 200, 0],
    ]);
  });

  it('turns schema-1 history rows into columns with UNet blocks', async () => {
    const { store } = storeWithFixture();
    const h = (await store.history('k2v1old'))!;
    expect(h.layers.map((l) => l.block)).toEqual(['down', 'mid', 'up']);
    expect(h.steps).toEqual([1, 2]);
    expect(h.loss).toEqual([0.31, 0.27]);
    expect(h.ranks[0]).toEqual([4, 5]);
    expect(h.ranks[2]).toEqual([Number.NaN, 3]);
  });

  it('refuses records from a newer schema instead of damaging them', async () => {
    expect(() => migrateSession({ schemaVersion: SCHEMA_VERSION + 1, id: 'x' })).toThrow(SchemaTooNewError);
    const kv = memoryKeyValueStore();
    const newer = { schemaVersion: SCHEMA_VERSION + 1, id: 'fut', name: 'from the future' };
    kv.data.set('session:fut', newer);
    const store = new SessionStore(kv);
    expect(await store.list()).toEqual([]);
    expect(kv.data.get('session:fut')).toBe(newer);
  });

  it('maps module paths to UNet blocks', () => {
    expect(blockOfLayer('down_blocks.1.attentions.0.proj_in')).toBe('down');
    expect(blockOfLayer('mid_block.attentions.0.proj_out')).toBe('mid');
    expect(blockOfLayer('up_blocks.2.resnets.0.conv1')).toBe('up');
    expect(blockOfLayer('output_blocks.3.1.proj_in')).toBe('up');
  });
});

describe('session store', () => {
  it('creates, updates and lists sessions newest first', async () => {
    let t = 1000;
    const store = new SessionStore(memoryKeyValueStore(), { now: () => t++ });
    const a = await store.create({ name: 'a' });
    const b = await store.create({ name: 'b' });
    await store.update(a.id, { settings: { ...a.settings, steps: 77 } });
    const list = await store.list();
    expect(list.map((s) => s.name)).toEqual(['a', 'b']);
    expect(list[0].settings.steps).toBe(77);
    expect(b.settings).toEqual(DEFAULT_TRAIN_SETTINGS);
  });

  it('keeps every photo when adds race each other, and never reuses a number', async () => {
    const store = new SessionStore(memoryKeyValueStore());
    const s = await store.create();
    await Promise.all([store.addPhotos(s.id, [photo('a'), photo('b')]), store.addPhotos(s.id, [photo('c')])]);
    await store.removePhoto(s.id, 1);
    const [n] = await store.addPhotos(s.id, [photo('d')]);
    expect(n).toBe(3);
    expect((await store.photos(s.id)).map((p) => p.photo.name)).toEqual(['a', 'c', 'd']);
  });

  it("keeps a photo's caption, changes it, and removes it when emptied", async () => {
    const store = new SessionStore(memoryKeyValueStore());
    const s = await store.create();
    await store.addPhotos(s.id, [{ ...photo('a'), caption: '<v1> dog face, on grass' }, photo('b')]);
    const captions = async () => (await store.photos(s.id)).map((p) => p.photo.caption);
    expect(await captions()).toEqual(['<v1> dog face, on grass', undefined]);
    await store.setPhotoCaption(s.id, 1, '  <v1> dog face, asleep ');
    expect(await captions()).toEqual(['<v1> dog face, on grass', '<v1> dog face, asleep']);
    await store.setPhotoCaption(s.id, 0, '  ');
    expect(await captions()).toEqual([undefined, '<v1> dog face, asleep']);
    await expect(store.setPhotoCaption(s.id, 9, 'x')).rejects.toThrow(/photo 9 .* does not exist/);
  });

  it('writes settings and captions for a page going away without reading first, from the last record it knew', async () => {
    const kv = memoryKeyValueStore();
    const store = new SessionStore(kv);
    const s = await store.create();
    await store.addPhotos(s.id, [photo('a')]);
    await store.photos(s.id);
    // From here every read hangs, as a read's answer does on a page that is gone.
    const get = kv.get;
    const getMany = kv.getMany;
    kv.get = () => new Promise(() => undefined);
    kv.getMany = () => new Promise(() => undefined);
    await store.updateNow(s.id, { settings: { ...s.settings, prompt: '<v1> corgi' } });
    await store.setPhotoCaptionNow(s.id, 0, ' <v1> corgi, asleep ');
    kv.get = get;
    kv.getMany = getMany;
    const fresh = new SessionStore(kv);
    expect((await fresh.get(s.id))!.settings.prompt).toBe('<v1> corgi');
    // The session record kept the photo list the last write gave it.
    expect((await fresh.photos(s.id)).map((p) => [p.photo.name, p.photo.caption])).toEqual([
      ['a', '<v1> corgi, asleep'],
    ]);
  });

  it('sizes and deletes a session with its checkpoints, leaving other sessions alone', async () => {
    const kv = memoryKeyValueStore();
    const store = new SessionStore(kv);
    const a = await store.create({ name: 'a' });
    const b = await store.create({ name: 'b' });
    await store.addPhotos(a.id, [photo('p', 5000)]);
    await store.addSample(a.id, {
      kind: 'preview',
      step: 10,
      prompt: 'x',
      width: 8,
      height: 8,
      image: png(700),
    });
    kv.data.set(`ckpt:${a.id}:100`, { step: 100, a: new Float32Array(1000) });
    kv.data.set(`ckpt:${b.id}:5`, new Uint8Array(10));
    const sizes = await store.sizes();
    expect(sizes.get(a.id)).toBeGreaterThan(5000 + 700 + 4000);
    expect(sizes.get(a.id)).toBeLessThan(5000 + 700 + 4000 + 2000);
    await store.delete(a.id);
    expect([...kv.data.keys()].sort()).toEqual([`ckpt:${b.id}:5`, storeKeys.session(b.id)].sort());
  });

  it('finds data whose session record is gone', async () => {
    const kv = memoryKeyValueStore();
    const store = new SessionStore(kv);
    const a = await store.create();
    kv.data.set('photo:zzz:0', { name: 'lost', blob: png(1) });
    kv.data.set('ckpt:yyy', new Uint8Array(1));
    kv.data.set(`ckpt:${a.id}:1`, new Uint8Array(1));
    expect((await store.orphans()).sort()).toEqual(['yyy', 'zzz']);
  });

  it('lists cached class-image sets apart from sessions, and deletes one or all', async () => {
    const kv = memoryKeyValueStore();
    const store = new SessionStore(kv);
    const a = await store.create();
    const sessionBytes = (await store.sizes()).get(a.id);
    const img = (v: number) => ({ width: 2, height: 2, data: new Uint8ClampedArray(16).fill(v) });
    const robot = classImageKey({
      model: '/models/emoji-tiny/',
      prompt: 'robot',
      count: 3,
      seed: 1000,
      steps: 20,
      guidance: 4,
    });
    const dog = classImageKey({
      model: '/models/emoji-tiny/',
      prompt: 'dog',
      count: 1,
      seed: 1000,
      steps: 20,
      guidance: 4,
    });
    kv.data.set(storeKeys.classImages(robot), [img(1), img(2), img(3)]);
    kv.data.set(storeKeys.classImages(dog), [img(9)]);
    kv.data.set('class:not json', 'junk');

    const sets = await store.classImageSets(2);
    expect(sets.map((s) => [s.prompt, s.images, s.previews.length])).toEqual([
      ['robot', 3, 2],
      ['dog', 1, 1],
      [undefined, 0, 0],
    ]);
    expect(sets[0]).toMatchObject({ model: '/models/emoji-tiny/', count: 3, steps: 20, guidance: 4 });
    expect(sets[0].bytes).toBeGreaterThan(3 * 16);
    expect(sets[0].previews[1].data[0]).toBe(2);
    // Class images are no session's data: not in a session's size, not orphans, kept when a session goes.
    expect(await store.orphans()).toEqual([]);
    expect((await store.sizes()).get(a.id)).toBe(sessionBytes);
    await store.delete(a.id);
    expect(await store.classImageSets()).toHaveLength(3);

    await store.deleteClassImages([storeKeys.classImages(dog), 'class:no such set']);
    expect((await store.classImageSets()).map((s) => s.prompt)).toEqual(['robot', undefined]);
    await store.deleteClassImages();
    expect(await store.classImageSets()).toEqual([]);
  });

  it('reads the fields of a class-image key and nothing from other strings', () => {
    const spec = { model: 'm/', prompt: 'a "red" cat', count: 8, seed: 1000, steps: 20, guidance: 4.5 };
    expect(parseClassImageKey(classImageKey(spec))).toEqual({
      model: 'm/',
      prompt: 'a "red" cat',
      count: 8,
      steps: 20,
      guidance: 4.5,
    });
    expect(parseClassImageKey('{"a":1}')).toEqual({});
    expect(parseClassImageKey('[1,2')).toEqual({});
    expect(parseClassImageKey('[3,"x"]')).toEqual({
      model: undefined,
      prompt: 'x',
      count: undefined,
      steps: undefined,
      guidance: undefined,
    });
  });

  it('says which sessions to delete when storage is full', async () => {
    const kv = memoryKeyValueStore({ quotaBytes: 20_000 });
    const store = new SessionStore(kv, { estimate: async () => ({ usage: 19_000, quota: 20_000 }) });
    const big = await store.create({ name: 'big dog' });
    await store.addPhotos(big.id, [photo('p', 12_000)]);
    const small = await store.create({ name: 'small' });
    const err = await store.addPhotos(small.id, [photo('q', 9_000)]).catch((e) => e);
    expect(err).toBeInstanceOf(StorageFullError);
    expect(err.message).toMatch(/storage is full \(19 KB of 20 KB used\)/);
    expect(err.message).toMatch(/The largest: “big dog” 1[23] KB, “small”/);
    expect(err.largest[0].id).toBe(big.id);
    expect(err.message).not.toMatch(/class images/);
    // Cached class images are named as something to delete as well.
    kv.data.set(storeKeys.classImages('["m","robot",1,1000,20,4]'), [
      { width: 8, height: 8, data: new Uint8ClampedArray(256) },
    ]);
    const err2 = await store.addPhotos(small.id, [photo('q', 9_000)]).catch((e) => e);
    expect(err2.message).toMatch(/Cached class images take \d+ B; they can be deleted there too/);
    // Nothing half-written: the photo record and the pointer are one transaction.
    expect(await store.photos(small.id)).toEqual([]);
  });

  it('exports a session to one file and imports it under a new id when the old one is taken', async () => {
    const kv = memoryKeyValueStore();
    const store = new SessionStore(kv);
    const s = await store.create({ name: 'cat' });
    await store.addPhotos(s.id, [photo('c.png', 321)]);
    await store.saveHistory(s.id, {
      layers: [{ name: 'mid_block.x', block: 'mid' }],
      steps: [1, 2],
      loss: [0.5, Number.NaN],
      ranks: [[4, 5]],
      contributions: [{ step: 2, rows: [new Float32Array([0.25, 0.125])] }],
      adapterBytes: 100,
      fixedRankBytes: 900,
    });
    kv.data.set(`ckpt:${s.id}:2`, { sessionId: s.id, step: 2, weights: new Float32Array([1, 2]) });
    const file = await store.exportSession(s.id);

    const copy = await store.importSession(file);
    expect(copy.id).not.toBe(s.id);
    expect(copy.name).toBe('cat (imported)');
    expect((await store.photos(copy.id))[0].photo.blob.size).toBe(321);
    const h = (await store.history(copy.id))!;
    expect(h.loss).toEqual([0.5, Number.NaN]);
    expect([...h.contributions[0].rows[0]]).toEqual([0.25, 0.125]);
    const ckpt = kv.data.get(`ckpt:${copy.id}:2`) as { sessionId: string; weights: Float32Array };
    expect(ckpt.sessionId).toBe(copy.id);
    expect([...ckpt.weights]).toEqual([1, 2]);

    // Into an empty browser it keeps its id.
    const other = new SessionStore(memoryKeyValueStore());
    expect((await other.importSession(file)).id).toBe(s.id);
  });

  it('estimates stored bytes', () => {
    expect(valueBytes(new Float32Array(10))).toBe(40);
    expect(valueBytes(png(123))).toBe(123);
    expect(valueBytes({ a: 'xy' })).toBe(8 + 2 + 4);
  });
});

describe('requestedModelUrl', () => {
  it('maps ?model=NAME to the shipped folder and ignores other parameters', () => {
    expect(requestedModelUrl('?model=micro-test')).toBe('/models/micro-test/');
    expect(requestedModelUrl('?x=1&model=emoji-tiny')).toBe('/models/emoji-tiny/');
    expect(requestedModelUrl('')).toBeUndefined();
    expect(requestedModelUrl('?x=1')).toBeUndefined();
    expect(requestedModelUrl('?model=local:my-sd15')).toBe('local:my-sd15');
  });
  it('refuses names that would leave /models/', () => {
    for (const bad of ['?model=../secrets', '?model=a/b', '?model=', '?model=http://x', '?model=local:../x'])
      expect(() => requestedModelUrl(bad)).toThrow(/letters, digits and dashes/);
  });
});
