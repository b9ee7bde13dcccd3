// Nice values of threads (Linux /proc), for the test tiers that yield the CPU to the browser under test.
import { readdirSync, readFileSync } from 'node:fs';

export const NODE_TIER_NICE = 10;

/** Nice value of the thread at `task` (a /proc/PID/task/TID path); undefined once it has ended. */
export function threadNice(task: string): number | undefined {
  try {
    // stat: "tid (comm) state ppid …": the 19th field is the nice value; comm may hold spaces.
    const stat = readFileSync(`${task}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  } catch {
    return undefined;
  }
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
