// The VAE's move from onnxruntime-web's WebGPU EP to WASM, on fake sessions: at load, while running (retried once
// on WASM, the WebGPU sessions released), never away from WASM, and one move when two runs fail at once.
import { describe, expect, it } from 'vitest';
import { EpFallback, type EpBackend } from './epFallback';

/** Fake parts: a name per open, and which EPs fail to open or to run. */
function fakeEps(fail: { open?: EpBackend[]; run?: EpBackend[] } = {}) {
  const opened: string[] = [];
  const released: string[] = [];
  const open = async (ep: EpBackend) => {
    if (fail.open?.includes(ep)) throw new Error(`no ${ep} adapter\nstack…`);
    const name = `${ep}#${opened.length}`;
    opened.push(name);
    return { ep, name };
  };
  const release = async (p: { name: string }) => {
    released.push(p.name);
  };
  const run = async (p: { ep: EpBackend; name: string }) => {
    await Promise.resolve();
    if (fail.run?.includes(p.ep)) throw new Error(`Conv failed on ${p.ep}\ndetails`);
    return `ran on ${p.name}`;
  };
  return { opened, released, open, release, run };
}

describe('EpFallback', () => {
  it('starts on WebGPU when asked and it opens; on WASM alone when asked for WASM', async () => {
    const f = fakeEps();
    const gpu = await EpFallback.start('webgpu', f.open, f.release);
    expect([gpu.backend, gpu.fallbackReason]).toEqual(['webgpu', undefined]);
    const wasm = await EpFallback.start('wasm', f.open, f.release);
    expect([wasm.backend, wasm.fallbackReason]).toEqual(['wasm', undefined]);
    expect(f.opened).toEqual(['webgpu#0', 'wasm#1']);
    await wasm.dispose();
    expect(f.released).toEqual(['wasm#1']);
  });

  it('opens on WASM with the reason when the WebGPU EP does not start', async () => {
    const f = fakeEps({ open: ['webgpu'] });
    const e = await EpFallback.start('webgpu', f.open, f.release);
    expect(e.backend).toBe('wasm');
    expect(e.fallbackReason).toBe("onnxruntime-web's WebGPU EP did not start (no webgpu adapter)");
    expect(await e.run('decoding', f.run)).toBe('ran on wasm#0');
  });

  it('moves to WASM when a run fails on WebGPU: retried there, the WebGPU parts released, later runs stay', async () => {
    const f = fakeEps({ run: ['webgpu'] });
    const e = await EpFallback.start('webgpu', f.open, f.release);
    expect(await e.run('decoding', f.run)).toBe('ran on wasm#1');
    expect(e.backend).toBe('wasm');
    expect(e.fallbackReason).toBe(
      "onnxruntime-web's WebGPU EP failed while decoding (Conv failed on webgpu)",
    );
    expect(f.released).toEqual(['webgpu#0']);
    expect(e.current.name).toBe('wasm#1');
    expect(await e.run('encoding', f.run)).toBe('ran on wasm#1');
    expect(f.opened).toEqual(['webgpu#0', 'wasm#1']);
  });

  it('throws what fails on WASM as it is, and keeps the WebGPU parts when WASM cannot open either', async () => {
    const onWasm = fakeEps({ run: ['wasm'] });
    const w = await EpFallback.start('wasm', onWasm.open, onWasm.release);
    await expect(w.run('decoding', onWasm.run)).rejects.toThrow('Conv failed on wasm');
    expect(onWasm.opened).toEqual(['wasm#0']);

    const neither = fakeEps({ run: ['webgpu'] });
    const stuck = await EpFallback.start(
      'webgpu',
      async (ep: EpBackend) => {
        if (ep === 'wasm') throw new Error('out of memory');
        return neither.open(ep);
      },
      neither.release,
    );
    await expect(stuck.run('decoding', neither.run)).rejects.toThrow('out of memory');
    expect(stuck.backend).toBe('webgpu');
    expect(neither.released).toEqual([]);
  });

  it('moves once when two runs fail on WebGPU together', async () => {
    const f = fakeEps({ run: ['webgpu'] });
    const e = await EpFallback.start('webgpu', f.open, f.release);
    const both = await Promise.all([e.run('decoding', f.run), e.run('decoding', f.run)]);
    expect(both).toEqual(['ran on wasm#1', 'ran on wasm#1']);
    expect(f.opened).toEqual(['webgpu#0', 'wasm#1']);
    expect(f.released).toEqual(['webgpu#0']);
  });
});
