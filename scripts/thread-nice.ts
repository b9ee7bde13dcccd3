// Nice values and CPU time of processes and threads (Linux /proc), for the test tiers that yield the CPU to the
// browser under test and check how busy a thread was.
import { readdirSync, readFileSync } from 'node:fs';

export const NODE_TIER_NICE = 10;

/**
 * The `stat` of a /proc/PID or /proc/PID/task/TID path: comm, and the fields after it (state is [0], utime [11],
 * stime [12], nice [16]); undefined once it has ended. The line is "id (comm) state …", and comm may hold spaces.
 */
export function procStat(path: string): { comm: string; fields: string[] } | undefined {
  try {
    const stat = readFileSync(`${path}/stat`, 'utf8');
    const end = stat.lastIndexOf(')');
    return { comm: stat.slice(stat.indexOf('(') + 1, end), fields: stat.slice(end + 2).split(' ') };
  } catch {
    return undefined;
  }
}

/** CPU time (user + system, clock ticks) of a process or thread so far; 0 once it has ended. */
export function cpuTicks(path: string): number {
  const f = procStat(path)?.fields;
  return f ? Number(f[11]) + Number(f[12]) : 0;
}

/** Nice value of the thread at `task` (a /proc/PID/task/TID path); undefined once it has ended. */
export function threadNice(task: string): number | undefined {
  const f = procStat(task)?.fields;
  return f ? Number(f[16]) : undefined;
}

/** Thread ids of this process ([] without /proc). */
export function ownThreadIds(): number[] {
  try {
    return readdirSync('/proc/self/task').map(Number);
  } catch {
    return [];
  }
}

/** Nice value of each thread of this process ([] without /proc). */
export function ownThreadNices(): number[] {
  const out: number[] = [];
  for (const tid of ownThreadIds()) {
    const nice = threadNice(`/proc/self/task/${tid}`);
    if (nice !== undefined) out.push(nice);
  }
  return out;
}
