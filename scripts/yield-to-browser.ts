// Vitest setup for the Node tiers (unit, gpu). `npm test` keeps the e2e tier apart from them (vitest.config.ts), but
// anyone running tiers at once (two terminals, an IDE) puts them beside it, and its tests measure how long
// the studio's main thread is blocked in Chromium. On a 2-core machine, lavapipe's shader threads and the
// CPU-bound unit tests would otherwise take the CPU from the page and turn a 30 ms task into a 300 ms one,
// which measures our test suite, not the studio (a user's browser does not share the machine with it).
// So every thread of a Node tier's test process runs at nice NODE_TIER_NICE, checked each second for new
// threads (Dawn and lavapipe start theirs when the device is created). The tiers still get all the CPU the
// browser leaves. Linux only; elsewhere, or without /proc, it does nothing.
import { setPriority } from 'node:os';
import { NODE_TIER_NICE, ownThreadIds } from './thread-nice';

function lowerOwnThreads(): void {
  for (const tid of ownThreadIds()) {
    try {
      setPriority(tid, NODE_TIER_NICE);
    } catch {
      // the thread ended meanwhile, or the platform refuses
    }
  }
}

if (process.platform === 'linux' && !process.env.LORA2_NO_YIELD) {
  lowerOwnThreads();
  setInterval(lowerOwnThreads, 1000).unref();
}
