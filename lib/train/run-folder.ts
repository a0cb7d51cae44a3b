// A training run's folder, and the one place that writes it:
//   run.json          the run's identity (a hash of what decides its trajectory), so the folder holds one run
//   metrics.jsonl     one line per logged step (appended whole; trimmed when a resumed run redoes steps)
//   checkpoint-<k>/   written under a temporary name and renamed: whole or absent; rotated, never the newest
//   final/            the same way
// Temporary folders a killed run left (.checkpoint-*, .final.tmp-*) are removed when the folder is opened.
import { existsSync } from 'node:fs';
import { appendFile, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { writeJsonFile, writeJsonl } from '../data/jsonl.js';
import { prepareWritableDir } from '../paths.js';

export interface Checkpoint {
  step: number;
  dir: string;
}

/** What run.json records: the identity and the fields it was computed from (to say what differs). */
export interface RunRecord {
  identity: string;
  trajectory: Record<string, unknown>;
  tpo: string;
  created: string;
}

const CHECKPOINT = /^checkpoint-(\d+)$/;
const TEMPORARY = /^\.(checkpoint-\d+|final)\.tmp-/;

export class RunFolder {
  readonly metricsFile: string;
  readonly recordFile: string;
  readonly finalDir: string;

  private constructor(readonly dir: string) {
    this.metricsFile = join(dir, 'metrics.jsonl');
    this.recordFile = join(dir, 'run.json');
    this.finalDir = join(dir, 'final');
  }

  /** The folder as it is, to look at (nothing is created or removed). */
  static at(dir: string): RunFolder {
    return new RunFolder(dir);
  }

  /** The folder, created (never under /proc or /sys; it must take files), without a killed run's temporaries. */
  static async open(dir: string): Promise<RunFolder> {
    prepareWritableDir(dir, 'a training run folder');
    const folder = new RunFolder(dir);
    for (const name of await readdir(dir)) if (TEMPORARY.test(name)) await rm(join(dir, name), { recursive: true, force: true });
    return folder;
  }

  /** Complete checkpoints, oldest first (a folder is renamed into place only once whole). */
  async checkpoints(): Promise<Checkpoint[]> {
    if (!existsSync(this.dir)) return [];
    return (await readdir(this.dir))
      .map((name) => CHECKPOINT.exec(name)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number)
      .sort((a, b) => a - b)
      .map((step) => ({ step, dir: this.checkpointDir(step) }));
  }

  async latest(): Promise<Checkpoint | undefined> {
    return (await this.checkpoints()).at(-1);
  }

  checkpointDir(step: number): string {
    return join(this.dir, `checkpoint-${step}`);
  }

  /** What of a run the folder holds: checkpoints, metrics, final/, run.json. Empty: a fresh folder. */
  async artifacts(): Promise<string[]> {
    if (!existsSync(this.dir)) return [];
    const names = await readdir(this.dir);
    return names.filter((n) => CHECKPOINT.test(n) || ['metrics.jsonl', 'final', 'run.json'].includes(n));
  }

  async readRecord(): Promise<RunRecord | undefined> {
    if (!existsSync(this.recordFile)) return undefined;
    try {
      return JSON.parse(await readFile(this.recordFile, 'utf8')) as RunRecord;
    } catch (error) {
      throw new Error(`${this.recordFile}: ${(error as Error).message}`);
    }
  }

  writeRecord(record: RunRecord): Promise<void> {
    return writeJsonFile(this.recordFile, record);
  }

  /** Removes everything of a run (checkpoints, metrics, final/, run.json): what `overwrite` asks for. */
  async clear(): Promise<void> {
    for (const name of await this.artifacts()) await rm(join(this.dir, name), { recursive: true, force: true });
  }

  /**
   * Writes folder `name` whole or not at all: `fill` fills a temporary folder beside it, which is then renamed over
   * it (an existing one is replaced). Returns the folder's path.
   */
  async writeFolder(name: string, fill: (temp: string) => Promise<void>): Promise<string> {
    const target = join(this.dir, name);
    const temp = join(this.dir, `.${name}.tmp-${process.pid}`);
    await rm(temp, { recursive: true, force: true });
    try {
      await fill(temp);
      if (existsSync(target)) await rm(target, { recursive: true, force: true });
      await rename(temp, target);
    } catch (error) {
      await rm(temp, { recursive: true, force: true });
      throw error;
    }
    return target;
  }

  /**
   * Keeps the `keepLast` newest checkpoints at or below `current` (the one just written, never deleted) and
   * removes the older ones; a checkpoint past `current` is not this run's to judge and is left alone.
   */
  async rotate(keepLast: number, current: number): Promise<number[]> {
    const older = (await this.checkpoints()).filter((c) => c.step < current).map((c) => c.step);
    const drop = older.slice(0, Math.max(0, older.length - (keepLast - 1)));
    for (const step of drop) await rm(this.checkpointDir(step), { recursive: true, force: true });
    return drop;
  }

  /** Appends one metrics line (one write of a whole line). */
  appendMetrics(line: Record<string, unknown>): Promise<void> {
    return appendFile(this.metricsFile, JSON.stringify(line) + '\n');
  }

  /** The lines of metrics.jsonl (a torn last line left by a kill is not one). */
  async metrics(): Promise<Record<string, unknown>[]> {
    if (!existsSync(this.metricsFile)) return [];
    const out: Record<string, unknown>[] = [];
    for (const line of (await readFile(this.metricsFile, 'utf8')).split('\n')) {
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // an empty line, or one torn by the kill
      }
    }
    return out;
  }

  /** Drops metrics logged after `step` (a run killed after its last checkpoint logged steps it will redo). */
  async trimMetrics(step: number): Promise<number> {
    if (!existsSync(this.metricsFile)) return 0;
    const lines = await this.metrics();
    const kept = lines.filter((l) => typeof l.step === 'number' && l.step <= step);
    await writeJsonl(this.metricsFile, kept);
    return lines.length - kept.length;
  }
}
