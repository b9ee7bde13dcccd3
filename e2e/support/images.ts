// Test photos for the studio e2e tests: PNG bytes written from Node (node:zlib), JPEG/WebP rendered by the
// page's own encoder, an EXIF orientation tag spliced into a JPEG, and dropping files on an element.
import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import type { Page } from 'playwright-core';

export interface TestFile {
  name: string;
  mimeType: string;
  buffer: Buffer;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** An RGBA PNG of `width`×`height`; `pixel(x, y)` gives [r, g, b, a]. */
export function encodePng(width: number, height: number, pixel: (x: number, y: number) => number[]): Buffer {
  const raw = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 4 + 1)] = 0; // filter: none
    for (let x = 0; x < width; x++) raw.set(pixel(x, y), y * (width * 4 + 1) + 1 + x * 4);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA, deflate, no filter method variants, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A soft radial blob on a gradient, so thumbnails are told apart at a glance. */
export function blobPng(width: number, height: number, hue: number): Buffer {
  const [r0, g0, b0] = hueRgb(hue);
  return encodePng(width, height, (x, y) => {
    const dx = (x - width / 2) / (width / 3);
    const dy = (y - height / 2) / (height / 3);
    const t = Math.max(0, 1 - Math.hypot(dx, dy));
    const bg = 30 + (40 * y) / height;
    return [bg + (r0 - bg) * t, bg + (g0 - bg) * t, bg + 20 + (b0 - bg - 20) * t, 255].map(Math.round);
  });
}

function hueRgb(h: number): number[] {
  const f = (n: number) => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (0.5 - 0.5 * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

/** A real emoji PNG (64×64) from the corpus packages the default model is trained on. */
export function emojiPng(codepoint: string): TestFile {
  const path = `node_modules/emoji-datasource-google/img/google/64/${codepoint}.png`;
  return { name: `${codepoint}.png`, mimeType: 'image/png', buffer: readFileSync(path) };
}

/**
 * An image encoded by the page (JPEG or WebP): a landscape frame with a marker in the top-left corner, so
 * a test can tell whether EXIF rotation was applied.
 */
export async function renderInPage(
  page: Page,
  width: number,
  height: number,
  type: 'image/jpeg' | 'image/webp',
): Promise<Buffer> {
  const bytes = await page.evaluate(
    async ({ width, height, type }) => {
      const c = new OffscreenCanvas(width, height);
      const g = c.getContext('2d')!;
      const grad = g.createLinearGradient(0, 0, width, height);
      grad.addColorStop(0, '#334');
      grad.addColorStop(1, '#6a8');
      g.fillStyle = grad;
      g.fillRect(0, 0, width, height);
      g.fillStyle = '#f33';
      g.fillRect(0, 0, width / 4, height / 4);
      g.fillStyle = '#fe5';
      g.beginPath();
      g.arc(width / 2, height / 2, Math.min(width, height) / 4, 0, Math.PI * 2);
      g.fill();
      const blob = await c.convertToBlob({ type, quality: 0.9 });
      return [...new Uint8Array(await blob.arrayBuffer())];
    },
    { width, height, type },
  );
  return Buffer.from(bytes);
}

/** `jpeg` with an EXIF APP1 segment (Orientation = `orientation`) inserted after SOI. */
export function withExifOrientation(jpeg: Buffer, orientation: number): Buffer {
  if (jpeg[0] !== 0xff || jpeg[1] !== 0xd8) throw new Error('not a JPEG');
  const tiff = Buffer.from([
    0x4d,
    0x4d,
    0x00,
    0x2a,
    0x00,
    0x00,
    0x00,
    0x08, // big-endian TIFF header, IFD0 at 8
    0x00,
    0x01, // one entry
    0x01,
    0x12,
    0x00,
    0x03,
    0x00,
    0x00,
    0x00,
    0x01,
    0x00,
    orientation,
    0x00,
    0x00, // Orientation SHORT
    0x00,
    0x00,
    0x00,
    0x00, // no next IFD
  ]);
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'binary'), tiff]);
  const header = Buffer.from([0xff, 0xe1, 0, 0]);
  header.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), header, payload, jpeg.subarray(2)]);
}

/** Drops files on the element matching `selector`, as a person dragging them from the desktop would. */
export async function dropFiles(page: Page, selector: string, files: TestFile[]): Promise<void> {
  await page.evaluate(
    ({ selector, files }) => {
      const dt = new DataTransfer();
      for (const f of files) {
        const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
        dt.items.add(new File([bytes], f.name, { type: f.mimeType }));
      }
      const el = document.querySelector(selector)!;
      el.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      el.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    },
    {
      selector,
      files: files.map((f) => ({ name: f.name, mimeType: f.mimeType, data: f.buffer.toString('base64') })),
    },
  );
}

/** A folder for `dropFolder`: its name and what it holds (files, and folders of the same shape). */
export interface TestFolder {
  name: string;
  children: (TestFile | TestFolder)[];
}

/**
 * Drops a folder on `selector` as Chrome does (a DataTransferItem whose webkitGetAsEntry is a directory entry).
 * Pages cannot make real directory entries, so the drop event carries entries made of the same parts: files
 * are real File objects, folders hand out their contents in one readEntries batch.
 */
export async function dropFolder(page: Page, selector: string, folder: TestFolder): Promise<void> {
  type Wire = { name: string; mimeType?: string; data?: string; children?: Wire[] };
  const wire = (x: TestFile | TestFolder): Wire =>
    'children' in x
      ? { name: x.name, children: x.children.map(wire) }
      : { name: x.name, mimeType: x.mimeType, data: x.buffer.toString('base64') };
  await page.evaluate(
    ({ selector, root }) => {
      type W = { name: string; mimeType?: string; data?: string; children?: W[] };
      const entry = (w: W): unknown => {
        if (!w.children) {
          const f = new File([Uint8Array.from(atob(w.data!), (c) => c.charCodeAt(0))], w.name, {
            type: w.mimeType,
          });
          return { name: w.name, isFile: true, isDirectory: false, file: (ok: (f: File) => void) => ok(f) };
        }
        return {
          name: w.name,
          isFile: false,
          isDirectory: true,
          createReader() {
            let given = false;
            return {
              readEntries(ok: (e: unknown[]) => void) {
                ok(given ? [] : w.children!.map(entry));
                given = true;
              },
            };
          },
        };
      };
      const drop = new DragEvent('drop', {
        bubbles: true,
        cancelable: true,
        dataTransfer: new DataTransfer(),
      });
      const items = [{ kind: 'file', webkitGetAsEntry: () => entry(root) }];
      Object.defineProperty(drop, 'dataTransfer', { value: { items, files: [] } });
      document.querySelector(selector)!.dispatchEvent(drop);
    },
    { selector, root: wire(folder) },
  );
}
