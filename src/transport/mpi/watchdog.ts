// The watchdog of a rank waiting inside a collective call (PIPEWRIGHT_WATCHDOG=S, set by `launch
// --timeout S`): a rank that receives nothing for S seconds ends the job through `onQuiet`, which
// names what it waits for (a stopped rank cannot speak for itself). A late timer tick means this
// process itself was stopped (SIGSTOP, then SIGCONT): that is not the others' fault, so the quiet
// time restarts.
import type { MpiTransport } from "./transport.js";

export function watchdogSeconds(env: NodeJS.ProcessEnv = process.env): number {
  const s = Number(env.PIPEWRIGHT_WATCHDOG ?? 0);
  return s > 0 ? s : 0;
}

export async function watchQuiet<T>(mpi: MpiTransport, body: () => Promise<T>, onQuiet: (seconds: number) => void, limit = watchdogSeconds()): Promise<T> {
  if (!(limit > 0)) return body();
  let started = performance.now(), lastTick = started;
  const every = Math.min(1000, limit * 250);
  const timer = setInterval(() => {
    const now = performance.now();
    if (now - lastTick > 2 * every + 1000) started = now;
    lastTick = now;
    if ((now - Math.max(started, mpi.lastMessageAt)) / 1000 >= limit) onQuiet(limit);
  }, every);
  try { return await body(); } finally { clearInterval(timer); }
}
