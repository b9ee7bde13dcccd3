// How much CPU the page's main thread used during a long task, so the long-task checks judge the page's own
// work. Without a GPU, two cores are shared by the page, its worker, SwiftShader and V8's background compilers:
// a 30 ms task of ours can wait for a core and be measured as a 230 ms long task. The PerformanceObserver sees
// only wall time; /proc sees how much of it the main thread actually ran.
import { cpuTicks } from '../../scripts/thread-nice';
import { browserProcesses } from './browser';

/** Linux clock ticks (USER_HZ, 100 on every mainstream kernel) in milliseconds. */
const MS_PER_TICK = 10;

/** A long task as the page recorded it: wall-clock start (epoch ms, from performance.timeOrigin) and length. */
export interface LongTask {
  start: number;
  ms: number;
  at?: string;
}

/** A long task with the CPU time the renderer main threads used around it (undefined: not measurable here). */
export interface MeasuredLongTask extends LongTask {
  cpuMs: number | undefined;
}

interface Sample {
  at: number;
  /** CPU ticks so far of each renderer main thread, by process id. */
  ticks: Map<number, number>;
}

/**
 * Samples, every `intervalMs`, the CPU time of the main thread (the thread whose id is the process id) of each
 * page renderer of the test browser. A reload may move the page to a new renderer: every renderer is sampled,
 * and the idle ones add nothing. Linux only; elsewhere `cpuMs` is undefined and the checks fall back to wall time.
 */
export class MainThreadCpu {
  private readonly samples: Sample[] = [];
  private readonly timer: ReturnType<typeof setInterval> | undefined;
  private rendererScan = 0;
  private pids: number[] = [];

  constructor(
    private readonly profileDir: string,
    private readonly intervalMs = 50,
  ) {
    if (process.platform !== 'linux') return;
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    // Renderers come and go rarely; look for them every ~second, read their main threads every sample.
    if (this.rendererScan++ % Math.max(1, Math.round(1000 / this.intervalMs)) === 0)
      // Page renderers only: the browser UI's own renderer is not the page.
      this.pids = browserProcesses(this.profileDir, 'renderer', ['--top-chrome-webui']).map(Number);
    const ticks = new Map<number, number>();
    for (const pid of this.pids) {
      const t = cpuTicks(`/proc/${pid}/task/${pid}`);
      if (t > 0) ticks.set(pid, t);
    }
    this.samples.push({ at: Date.now(), ticks });
    // An hour of samples at most (e2e tests are far shorter).
    if (this.samples.length > Math.floor(3_600_000 / this.intervalMs)) this.samples.shift();
  }

  /**
   * CPU milliseconds the renderer main threads used from the last sample at or before `from` to the first at or
   * after `to` (epoch ms): a bound from above on the page's own work in that interval, since the window can only
   * be wider. Undefined without /proc or when the samples do not cover the interval.
   */
  cpuMs(from: number, to: number): number | undefined {
    const s = this.samples;
    let i = -1;
    for (let k = s.length - 1; k >= 0; k--)
      if (s[k].at <= from) {
        i = k;
        break;
      }
    const j = s.findIndex((x) => x.at >= to);
    if (i < 0 || j < 0) return undefined;
    let ticks = 0;
    for (const [pid, end] of s[j].ticks) ticks += end - (s[i].ticks.get(pid) ?? 0);
    return ticks * MS_PER_TICK;
  }

  /** Each task with the CPU its main thread used (after waiting, if need be, for a sample past its end). */
  async measure(tasks: LongTask[]): Promise<MeasuredLongTask[]> {
    if (this.timer && tasks.length) {
      const last = Math.max(...tasks.map((t) => t.start + t.ms));
      const wait = last + 2 * this.intervalMs - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    return tasks.map((t) => ({ ...t, cpuMs: this.cpuMs(t.start, t.start + t.ms) }));
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

/**
 * The long tasks that were the page's own work: over `limitMs` of wall time and, where /proc can tell, over
 * `limitMs` of main-thread CPU too. A task that was mostly waiting for a core (another process had it) is not a
 * long task of ours; on a machine with a GPU and free cores it would have been short.
 */
export function ownLongTasks(tasks: MeasuredLongTask[], limitMs: number): MeasuredLongTask[] {
  return tasks.filter((t) => t.ms > limitMs && (t.cpuMs === undefined || t.cpuMs > limitMs));
}

/** "228 ms (CPU 40 ms) at step –, running" for messages. */
export function describeLongTask(t: MeasuredLongTask): string {
  const cpu = t.cpuMs === undefined ? '' : ` (CPU ${t.cpuMs} ms)`;
  return `${t.ms} ms${cpu}${t.at ? ` at ${t.at}` : ''}`;
}
