/**
 * SIGINT (Ctrl-C) and SIGTERM (what Slurm, Kubernetes and most schedulers send at a time
 * limit or preemption) as a stop request: the runner checks it after every step and races
 * every evaluation against it, then checkpoints and logs the run as interrupted.
 */

/** The signals a run stops on, with the exit code a shell reports for each (128 + number). */
export const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;

/** A signal that stops a run. */
export type StopSignal = keyof typeof STOP_SIGNALS;

/** Listens for the stop signals while installed; {@link StopRequest.dispose} restores the defaults. */
export class StopRequest {
  /** The first stop signal received, or null. */
  signal: StopSignal | null = null;
  /** Resolves with the first stop signal received. */
  readonly received: Promise<StopSignal>;
  #resolve!: (signal: StopSignal) => void;
  readonly #listeners: [StopSignal, () => void][] = [];

  /** `onFirst` runs when the first stop signal arrives (e.g. to say what the run waits for). */
  constructor(onFirst?: (signal: StopSignal) => void) {
    this.received = new Promise((resolve) => (this.#resolve = resolve));
    for (const signal of Object.keys(STOP_SIGNALS) as StopSignal[]) {
      const listener = () => {
        if (this.signal) return;
        this.signal = signal;
        onFirst?.(signal);
        this.#resolve(signal);
      };
      Deno.addSignalListener(signal, listener);
      this.#listeners.push([signal, listener]);
    }
  }

  /**
   * Awaits `work` unless a stop signal comes first: then returns null at once and leaves
   * `work` to be dropped with the process (its rejection, if any, is ignored).
   */
  async unlessStopped<T>(work: Promise<T>): Promise<T | null> {
    if (this.signal) {
      work.catch(() => {});
      return null;
    }
    const stopped = Symbol("stopped");
    const result = await Promise.race([work, this.received.then(() => stopped)]);
    if (result === stopped) {
      work.catch(() => {});
      return null;
    }
    return result as T;
  }

  /** Removes the listeners (the signals' default actions apply again). */
  dispose(): void {
    for (const [signal, listener] of this.#listeners) Deno.removeSignalListener(signal, listener);
    this.#listeners.length = 0;
  }
}

/**
 * The exit code of a command whose run ended with `status` (0 when finished): 143 when
 * SIGTERM stopped it, 130 otherwise (SIGINT, as a shell reports Ctrl-C).
 */
export function exitCodeOfRun(log: { status: string; interrupted_by?: string }): number {
  if (log.status === "finished") return 0;
  return log.interrupted_by === "SIGTERM" ? STOP_SIGNALS.SIGTERM : STOP_SIGNALS.SIGINT;
}
