// Random-access byte sources: a multi-GB weight file is read a header and a tensor at a time, never whole.
// One interface over a browser Blob/File, a Node file handle and an in-memory buffer.

export interface ByteSource {
  /** Total length in bytes. */
  readonly size: number;
  /** Bytes [offset, offset + length); may return fewer only at end of file. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases an underlying file handle, where there is one. */
  close?(): Promise<void>;
}

function checkRange(size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`invalid read range offset=${offset} length=${length}`);
  }
  if (offset > size) throw new RangeError(`read at ${offset} is past the end (${size} bytes)`);
}

/** A source over bytes already in memory; reads are zero-copy views. */
export function bytesSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.byteLength,
    read(offset, length) {
      checkRange(bytes.byteLength, offset, length);
      return Promise.resolve(bytes.subarray(offset, Math.min(offset + length, bytes.byteLength)));
    },
  };
}

/** A source over a Blob or File (browser drag-and-drop, OPFS files); each read slices the blob. */
export function blobSource(blob: Blob): ByteSource {
  return {
    size: blob.size,
    async read(offset, length) {
      checkRange(blob.size, offset, length);
      return new Uint8Array(await blob.slice(offset, Math.min(offset + length, blob.size)).arrayBuffer());
    },
  };
}

/** The part of Node's `fs/promises` FileHandle this needs; structural so the browser build never imports fs. */
export interface FileHandleLike {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close?(): Promise<void>;
}

// Node caps a single read at 2 GiB; stay well below.
const MAX_READ_CHUNK = 1 << 30;

/** A source over an open Node file handle (`await fs.promises.open(path)`, size from `handle.stat()`). */
export function fileHandleSource(handle: FileHandleLike, size: number): ByteSource {
  return {
    size,
    close: async () => handle.close?.(),
    async read(offset, length) {
      checkRange(size, offset, length);
      const want = Math.min(length, size - offset);
      const out = new Uint8Array(want);
      let done = 0;
      while (done < want) {
        const n = Math.min(MAX_READ_CHUNK, want - done);
        const { bytesRead } = await handle.read(out, done, n, offset + done);
        if (bytesRead === 0) break; // the file shrank under us: return what exists, the caller reports it
        done += bytesRead;
      }
      return done === want ? out : out.subarray(0, done);
    },
  };
}
