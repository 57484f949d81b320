/**
 * How many intra-op threads a session gets when the user asks for none
 * (`threads: 0`, no `--threads`): one per physical core this process may
 * run on, passed to ONNX Runtime as an explicit count.
 *
 * Why not ORT's own default (intraOpNumThreads 0): with 0, ORT also sizes its
 * pool by physical cores, but pins each pool thread to one core. The pool's
 * thread 0 is the thread calling `run` (JavaScript's main thread), which is
 * not pinned; on a machine shared with other processes (or with a second
 * session, the augmentation graph), a pinned worker whose core is busy cannot
 * move, and every parallel op waits for it. Measured on a 2-core machine
 * (README, "Speed"): ORT's default was the slowest setting, an explicit count
 * of the physical cores the fastest.
 */
import type { Device } from "./session.ts";

/** Logical CPUs this process may run on (affinity mask and cgroup quota respected by Deno). */
export function availableCpus(): number {
  return Math.max(1, navigator.hardwareConcurrency || 1);
}

/**
 * Physical cores listed in `/proc/cpuinfo` text (distinct physical id / core
 * id pairs); null when the text lists none (some VMs and ARM kernels).
 */
export function physicalCoresFromCpuinfo(cpuinfo: string): number | null {
  const cores = new Set<string>();
  for (const block of cpuinfo.split(/\n\s*\n/)) {
    const field = (name: string) => block.match(new RegExp(`^${name}\\s*:\\s*(\\S+)`, "m"))?.[1];
    const core = field("core id");
    if (core !== undefined) cores.add(`${field("physical id") ?? "0"}/${core}`);
  }
  return cores.size > 0 ? cores.size : null;
}

let cachedDefault: number | undefined;

/**
 * The default intra-op thread count: the physical cores of this machine
 * (from /proc/cpuinfo), at most the logical CPUs this process may use;
 * the logical CPUs where /proc/cpuinfo says nothing about cores.
 */
export function defaultThreads(): number {
  if (cachedDefault === undefined) {
    let physical: number | null = null;
    try {
      physical = physicalCoresFromCpuinfo(Deno.readTextFileSync("/proc/cpuinfo"));
    } catch {
      physical = null;
    }
    const available = availableCpus();
    cachedDefault = Math.max(1, Math.min(physical ?? available, available));
  }
  return cachedDefault;
}

/**
 * The intra-op thread count of a session: `requested` when it is a positive
 * count, else {@link defaultThreads}. The one place the default is decided;
 * config plumbing (a `runtime.threads` key, `--threads`) passes 0 or nothing
 * for "default" and gets the same answer as every other caller.
 */
export function resolveThreads(requested: number | undefined, _device: Device = "cpu"): number {
  if (requested === undefined || requested === 0) return defaultThreads();
  if (!Number.isInteger(requested) || requested < 0) {
    throw new Error(`threads: expected a whole number ≥ 0 (0: default), got ${requested}`);
  }
  return requested;
}

/**
 * Whether idle pool threads spin by default: no. Spinning workers keep their
 * core busy between ops; on a machine where anything else runs (another
 * process, or this process's other session between runs) they are
 * descheduled mid-op and every parallel op waits for them. Measured on the
 * shared 2-core machine (README, "Speed"): 2 spinning threads were the slowest
 * setting in every round, 2 non-spinning threads as fast as 1 thread.
 */
export const DEFAULT_SPINNING = false;

/** Whether idle pool threads spin (ORT `session.intra_op.allow_spinning`): `requested`, else {@link DEFAULT_SPINNING}. */
export function resolveSpinning(requested: boolean | undefined): boolean {
  return requested ?? DEFAULT_SPINNING;
}
