/**
 * A one-line progress bar on stderr. On a terminal it redraws in place; when
 * stderr is not a terminal it prints a line every 30 s and when a bar
 * finishes, so logs stay readable.
 */

const NON_TTY_INTERVAL_MS = 30_000;

const encoder = new TextEncoder();

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const mm = String(m).padStart(2, "0");
  const ss = String(sec).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** A progress bar over `total` units of work. */
export class ProgressBar {
  readonly #start = performance.now();
  readonly #tty = Deno.stderr.isTerminal();
  #done = 0;
  #lastDraw = performance.now();

  constructor(readonly label: string, readonly total: number, readonly width = 24) {}

  /** Advances by `n` units and redraws with the given fields (loss, lr, ...). */
  tick(n = 1, fields: Record<string, string | number> = {}): void {
    this.#done = Math.min(this.total, this.#done + n);
    const now = performance.now();
    if (this.#tty && (now - this.#lastDraw > 100 || this.#done === this.total)) {
      this.#lastDraw = now;
      Deno.stderr.writeSync(encoder.encode(`\r${this.render(fields)}\x1b[K`));
    } else if (
      !this.#tty && now - this.#lastDraw > NON_TTY_INTERVAL_MS && this.#done < this.total
    ) {
      this.#lastDraw = now;
      Deno.stderr.writeSync(encoder.encode(`${this.render(fields)}\n`));
    }
  }

  /** Seconds since the bar was created. */
  seconds(): number {
    return (performance.now() - this.#start) / 1000;
  }

  /** The bar as text. */
  render(fields: Record<string, string | number> = {}): string {
    const fraction = this.total > 0 ? this.#done / this.total : 1;
    const filled = Math.round(fraction * this.width);
    const bar = "█".repeat(filled) + "░".repeat(this.width - filled);
    const elapsed = (performance.now() - this.#start) / 1000;
    const eta = this.#done > 0 ? (elapsed / this.#done) * (this.total - this.#done) : Infinity;
    const extra = Object.entries(fields)
      .map(([k, v]) => `${k} ${typeof v === "number" ? formatNumber(v) : v}`)
      .join("  ");
    return `${this.label} ${bar} ${this.#done}/${this.total} ${formatDuration(elapsed)}<${
      formatDuration(eta)
    } ${extra}`;
  }

  /** Finishes the bar with a final line; `complete: false` keeps the count reached (a stop). */
  finish(fields: Record<string, string | number> = {}, complete = true): void {
    if (complete) this.#done = this.total;
    Deno.stderr.writeSync(
      encoder.encode(this.#tty ? `\r${this.render(fields)}\x1b[K\n` : `${this.render(fields)}\n`),
    );
  }
}

function formatNumber(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) < 1e9) return String(v);
  if (Math.abs(v) >= 1e-3 && Math.abs(v) < 1e5) {
    return v.toFixed(Math.abs(v) >= 100 ? 0 : 4);
  }
  return v.toExponential(2);
}
