// How the Node entry routes Dawn's wait ticks (no GPU needed: the routing is plain JS).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DAWN_POLL_MS, dawnPolling, throttleDawnPolling } from './node';

describe('throttleDawnPolling', () => {
  afterEach(() => vi.restoreAllMocks());

  it('sends argument-less native callbacks (Dawn tick callbacks) through a 1 ms timer', async () => {
    throttleDawnPolling();
    const timer = vi.spyOn(globalThis, 'setTimeout');
    // A promise's resolve function is native, nameless and called without arguments, like Dawn's tick.
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    setImmediate(resolve);
    expect(timer).toHaveBeenCalledWith(resolve, DAWN_POLL_MS);
    await done;
  });

  it('leaves JS callbacks and callbacks with arguments on the real setImmediate', async () => {
    throttleDawnPolling();
    const timer = vi.spyOn(globalThis, 'setTimeout');
    const seen: unknown[] = [];
    await new Promise<void>((r) => setImmediate(() => (seen.push('closure'), r())));
    await new Promise<void>((r) => setImmediate((v: string) => (seen.push(v), r()), 'arg'));
    let resolve!: (v: string) => void;
    const withArg = new Promise<string>((r) => (resolve = r));
    setImmediate(resolve, 'native with arg');
    seen.push(await withArg);
    expect(seen).toEqual(['closure', 'arg', 'native with arg']);
    expect(timer).not.toHaveBeenCalled();
    // The real one's result, which clearImmediate accepts.
    const handle = setImmediate(() => seen.push('cleared'));
    clearImmediate(handle);
    await new Promise((r) => setTimeout(r, 5));
    expect(seen).not.toContain('cleared');
  });

  it('installs once', () => {
    throttleDawnPolling();
    const first = globalThis.setImmediate;
    throttleDawnPolling();
    expect(globalThis.setImmediate).toBe(first);
  });

  it('keeps Dawn spinning only when LORA2_DAWN_POLL=spin asks for it', () => {
    const before = process.env.LORA2_DAWN_POLL;
    try {
      delete process.env.LORA2_DAWN_POLL;
      expect(dawnPolling()).toBe('timer');
      process.env.LORA2_DAWN_POLL = 'spin';
      expect(dawnPolling()).toBe('spin');
    } finally {
      if (before === undefined) delete process.env.LORA2_DAWN_POLL;
      else process.env.LORA2_DAWN_POLL = before;
    }
  });
});
