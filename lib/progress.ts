// A terminal progress bar for long jobs (the CLI's, and any program's): one line rewritten in place on a terminal
// (done/total, rate, time left); nothing until the final line when stderr is a file or a pipe, so logs hold one
// line, not thousands. And the one duration formatter ("1m15s") everything that prints a time uses.

/** What the bar writes to: a stream, or anything with `write` (tests pass a fake). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** Printed before the counts, e.g. 'eval'. */
  label?: string;
  /** What is counted, e.g. 'questions'. */
  unit?: string;
  /** Default: process.stderr. */
  stream?: ProgressStream;
  /** Milliseconds between redraws on a terminal (the last one is always drawn). */
  intervalMs?: number;
  /** The clock, in milliseconds (tests pass their own). */
  now?: () => number;
  /** Already done when the bar starts (a resumed run): counted in done/total, not in the rate or the ETA. */
  initial?: number;
}

/** 75 -> "1m15s", 5.2 -> "5s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

const BAR_WIDTH = 24;

export class ProgressBar {
  readonly #total: number;
  readonly #label: string;
  readonly #unit: string;
  readonly #stream: ProgressStream;
  readonly #interval: number;
  readonly #now: () => number;
  readonly #started: number;
  readonly #initial: number;
  #done = 0;
  #drawn = -Infinity;
  #finished = false;

  constructor(total: number, options: ProgressOptions = {}) {
    if (!(Number.isInteger(total) && total >= 0)) throw new RangeError(`ProgressBar: total must be a whole number >= 0, got ${total}`);
    this.#total = total;
    this.#label = options.label ?? '';
    this.#unit = options.unit ?? '';
    this.#stream = options.stream ?? process.stderr;
    this.#interval = options.intervalMs ?? 100;
    this.#now = options.now ?? (() => performance.now());
    this.#started = this.#now();
    this.#initial = Math.min(Math.max(0, options.initial ?? 0), total);
    this.#done = this.#initial;
  }

  get done(): number {
    return this.#done;
  }

  /** What the counts alone do not say (e.g. '120 pairs kept'): shown after them, and on the final line. */
  #detail = '';

  /** Sets the count (e.g. from an onProgress callback), and the detail when given, and redraws when due. */
  update(done: number, detail?: string): void {
    this.#done = Math.min(Math.max(0, done), this.#total);
    if (detail !== undefined) this.#detail = detail;
    if (!this.#stream.isTTY || this.#finished) return;
    const now = this.#now();
    if (now - this.#drawn < this.#interval && this.#done < this.#total) return;
    this.#drawn = now;
    this.#stream.write(`\r${this.#fit(this.line())}\x1b[K`);
  }

  tick(count = 1): void {
    this.update(this.#done + count);
  }

  /** The final line, on every stream: what was done, in how long. Call once at the end (later calls do nothing). */
  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    const seconds = this.#seconds();
    const rate = seconds > 0 ? ` (${this.#rate((this.#done - this.#initial) / seconds)})` : '';
    const text = `${this.#prefix()}${this.#done}/${this.#total}${this.#unit ? ` ${this.#unit}` : ''} in ${formatDuration(seconds)}${rate}` +
      (this.#detail ? `, ${this.#detail}` : '');
    this.#stream.write(this.#stream.isTTY ? `\r${text}\x1b[K\n` : `${text}\n`);
  }

  /** The line as drawn now: label, bar, done/total, percent, rate, time left. */
  line(): string {
    const fraction = this.#total ? this.#done / this.#total : 1;
    const filled = Math.round(fraction * BAR_WIDTH);
    const seconds = this.#seconds();
    const rate = seconds > 0 ? (this.#done - this.#initial) / seconds : 0;
    const eta = rate > 0 ? formatDuration((this.#total - this.#done) / rate) : '?';
    return (
      `${this.#prefix()}[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ` +
      `${this.#done}/${this.#total} ${(100 * fraction).toFixed(0)}%  ${this.#rate(rate)}  ETA ${eta}` +
      (this.#detail ? `  ${this.#detail}` : '')
    );
  }

  #prefix(): string {
    return this.#label ? `${this.#label} ` : '';
  }

  #rate(perSecond: number): string {
    const unit = this.#unit || 'it';
    return perSecond >= 1 || perSecond === 0 ? `${perSecond.toFixed(1)} ${unit}/s` : `${(1 / perSecond).toFixed(1)} s/${unit.replace(/s$/, '')}`;
  }

  #seconds(): number {
    return (this.#now() - this.#started) / 1000;
  }

  /** A line longer than the terminal would wrap, and `\r` would then redraw only its last row. */
  #fit(text: string): string {
    const columns = this.#stream.columns;
    return columns && text.length >= columns ? text.slice(0, columns - 1) : text;
  }
}
