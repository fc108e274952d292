// A progress bar on stderr for training: samples/s, loss and ETA. On a terminal it redraws one line
// in place; when stderr is a file or pipe (CI logs) it prints a plain line every few seconds instead,
// so logs stay readable and small.

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(s: string): boolean;
}

export interface ProgressUpdate {
  /** Samples done in the current phase and in total. */
  done: number;
  total: number;
  /** Label, e.g. "epoch 2/5". */
  label: string;
  samplesPerS: number;
  loss?: number;
  /** Seconds left for the whole run; default: what is left of this phase at the current rate. */
  etaS?: number;
}

export class ProgressBar {
  private lastDraw = -Infinity;
  private drawn = false;
  private readonly tty: boolean;

  constructor(private readonly stream: ProgressStream = process.stderr,
    /** Minimum interval between redraws: short on a TTY, longer for plain lines. */
    private readonly intervalMs = stream.isTTY ? 100 : 5000,
    private readonly now: () => number = () => performance.now()) {
    this.tty = stream.isTTY === true;
  }

  update(u: ProgressUpdate, force = false): void {
    const t = this.now();
    if (!force && t - this.lastDraw < this.intervalMs) return;
    this.lastDraw = t;
    const line = formatProgress(u, this.tty ? (this.stream.columns ?? 100) : 0);
    if (this.tty) {
      this.stream.write(`\r${line}\x1b[K`);
      this.drawn = true;
    } else {
      this.stream.write(`${line}\n`);
    }
  }

  /** Ends the in-place line (TTY) so that the next output starts on a fresh line. */
  done(): void {
    if (this.tty && this.drawn) this.stream.write("\n");
    this.drawn = false;
    this.lastDraw = -Infinity;
  }

  /** Prints a message without garbling the bar. */
  log(message: string): void {
    if (this.tty && this.drawn) this.stream.write(`\r\x1b[K`);
    this.stream.write(`${message}\n`);
    this.drawn = false;
    this.lastDraw = -Infinity;
  }
}

/** One progress line; `columns` > 0 adds a bar sized to fit the terminal. */
export function formatProgress(u: ProgressUpdate, columns: number): string {
  const frac = u.total > 0 ? Math.min(1, u.done / u.total) : 0;
  const eta = u.etaS ?? (u.samplesPerS > 0 ? (u.total - u.done) / u.samplesPerS : NaN);
  const stats = [
    `${u.done}/${u.total}`,
    `${formatRate(u.samplesPerS)} samples/s`,
    u.loss !== undefined ? `loss ${u.loss.toFixed(4)}` : "",
    `ETA ${formatDuration(eta)}`,
  ].filter((s) => s.length > 0).join("  ");
  const pct = `${(frac * 100).toFixed(0).padStart(3)}%`;
  if (columns <= 0) return `${u.label} ${pct}  ${stats}`;
  const room = columns - u.label.length - pct.length - stats.length - 6;
  const width = Math.max(0, Math.min(30, room));
  if (width < 5) return `${u.label} ${pct}  ${stats}`;
  const full = Math.round(frac * width);
  return `${u.label} [${"#".repeat(full)}${".".repeat(width - full)}] ${pct}  ${stats}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--";
  const s = Math.round(seconds), h = Math.floor(s / 3600);
  const two = (n: number): string => String(n).padStart(2, "0");
  return `${h > 0 ? `${h}:` : ""}${two(Math.floor((s % 3600) / 60))}:${two(s % 60)}`;
}

function formatRate(r: number): string {
  if (!Number.isFinite(r)) return "-";
  return r >= 100 ? r.toFixed(0) : r.toFixed(1);
}
