/**
 * How busy other processes kept the machine while a timing ran: CPU ticks of
 * the whole machine (/proc/stat) minus this process's (/proc/self/stat), over
 * the wall time. On a shared machine this tells a clean figure from a
 * disturbed one.
 */

/** Linux clock ticks per second (USER_HZ, 100 on every mainstream kernel). */
const TICKS_PER_SECOND = 100;

/** Busy CPU ticks of the machine and of this process; null where /proc is unreadable. */
export function cpuTicks(): { machine: number; self: number } | null {
  try {
    const fields = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1)
      .map(Number);
    const [user, nice, system, , , irq, softirq, steal] = fields;
    const own = Deno.readTextFileSync("/proc/self/stat");
    const after = own.slice(own.lastIndexOf(")") + 2).split(" ");
    return {
      machine: user + nice + system + irq + softirq + steal,
      self: Number(after[11]) + Number(after[12]),
    };
  } catch {
    return null;
  }
}

/** Starts a measurement; the returned function gives the cores other processes kept busy since (null if unknown). */
export function startLoadMeter(): () => number | null {
  const before = cpuTicks();
  const t0 = performance.now();
  return () => {
    const after = cpuTicks();
    const seconds = (performance.now() - t0) / 1000;
    if (!before || !after || seconds <= 0) return null;
    const others = after.machine - before.machine - (after.self - before.self);
    return Math.max(0, others / TICKS_PER_SECOND / seconds);
  };
}

/** Other processes on an idle machine keep about this many cores busy (kernel threads). */
export const QUIET_OTHER_CORES = 0.4;

/** Steps during which other processes kept at most {@link QUIET_OTHER_CORES} busy: count and median ms (null if none). */
export function quietSteps(
  perStepMs: readonly number[],
  otherCoresPerStep: readonly (number | null)[],
): { count: number; medianMs: number | null } {
  const quiet = perStepMs.filter((_, i) => {
    const others = otherCoresPerStep[i];
    return others !== null && others !== undefined && others <= QUIET_OTHER_CORES;
  }).sort((a, b) => a - b);
  if (quiet.length === 0) return { count: 0, medianMs: null };
  const mid = quiet.length >> 1;
  return {
    count: quiet.length,
    medianMs: quiet.length % 2 ? quiet[mid] : (quiet[mid - 1] + quiet[mid]) / 2,
  };
}
