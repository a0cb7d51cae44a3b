// JSONL in and out. Reading streams the file a chunk at a time and numbers lines; a file that is one JSON array
// (as TimeWarp and LLaVA-Hound write their data) is read whole and numbered by index. Writing is either atomic
// (temporary file, fsync, rename) or an append that repairs a line torn by an earlier crash before adding to it.
import { createReadStream } from 'node:fs';
import { type FileHandle, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { z } from 'zod';

import { parse } from '../validate.js';
import { checkInputFile, PathError, prepareOutputFile } from '../paths.js';
import { DataError, type RecordSource } from './errors.js';

export interface JsonRecord {
  value: unknown;
  source: RecordSource;
}

export const ReadOptions = z.strictObject({
  /** 'throw' (default): the first bad record is an error. 'skip': bad records are counted in `stats` and left out. */
  onError: z.enum(['throw', 'skip']).default('throw'),
  /** Called with each skipped record's error (skip mode). */
  onSkip: z.custom<(error: DataError) => void>((f) => typeof f === 'function').optional(),
});
export type ReadOptions = z.input<typeof ReadOptions>;

export interface ReadStats {
  records: number;
  skipped: number;
  /** The first `MAX_KEPT_ERRORS` errors of skipped records. */
  errors: DataError[];
}

export const MAX_KEPT_ERRORS = 100;

function jsonError(error: unknown): string {
  return `not valid JSON (${(error as Error).message})`;
}

// A .jsonl or .ndjson file is read line by line whatever it holds; any other file whose first character is '[' is
// taken for one JSON array (json.dump's output).
const LINES_ONLY = /\.(jsonl|ndjson)$/i;

/**
 * Lines of a text stream, in time linear in its length: each chunk is scanned once for newlines, and a line that
 * spans chunks is kept as its pieces and joined once when its newline arrives (re-splitting a growing carry on
 * every chunk made one 50 MB line cost seconds). `work` counts the characters scanned and joined.
 */
export class LineSplitter {
  #pieces: string[] = [];
  /** Characters scanned for newlines plus characters copied to join pieces: at most twice the input's length. */
  work = 0;

  /** The lines `chunk` completes (without their newline). */
  push(chunk: string): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', start)) {
      this.work += nl + 1 - start;
      const piece = chunk.slice(start, nl);
      if (this.#pieces.length) {
        this.#pieces.push(piece);
        const line = this.#pieces.join('');
        this.work += line.length;
        lines.push(line);
        this.#pieces = [];
      } else {
        lines.push(piece);
      }
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.work += chunk.length - start;
      this.#pieces.push(start === 0 ? chunk : chunk.slice(start));
    }
    return lines;
  }

  /** What follows the last newline (a last line without one), and a fresh start. */
  end(): string {
    const rest = this.#pieces.join('');
    this.work += rest.length;
    this.#pieces = [];
    return rest;
  }
}

/**
 * Raw JSON values of a JSONL file (or a JSON array file), each with its file and line; blank lines are skipped. A
 * line that is not JSON comes as a DataError value rather than a throw, so the caller decides whether to stop;
 * a file that cannot be read (missing, a FIFO, a folder) throws.
 */
export async function* readJsonValues(file: string): AsyncGenerator<JsonRecord | DataError> {
  try {
    checkInputFile(file, 'a JSONL or JSON file');
  } catch (error) {
    throw error instanceof PathError ? new DataError(`cannot read: ${error.reason}`, { file }) : error;
  }
  const stream = createReadStream(file, { encoding: 'utf8' });
  const splitter = new LineSplitter();
  let line = 0;
  let first = true;
  let chunks = 0;
  try {
    for await (const raw of stream as AsyncIterable<string>) {
      const chunk = chunks++ === 0 ? raw.replace(/^\uFEFF/, '') : raw;
      if (first) {
        const content = /\S/.exec(chunk);
        if (content) {
          first = false;
          if (!LINES_ONLY.test(file) && content[0] === '[') {
            stream.destroy();
            yield* readJsonArray(file);
            return;
          }
        }
      }
      for (const text of splitter.push(chunk)) {
        line += 1;
        const record = parseLine(text, { file, line });
        if (record) yield record;
      }
    }
  } catch (error) {
    if ((error as DataError).code === 'ERR_TPO_DATA') throw error;
    throw new DataError(`cannot read: ${(error as Error).message}`, { file });
  } finally {
    stream.destroy();
  }
  const carry = splitter.end();
  if (carry.trim() !== '') {
    // No newline at the end. Files written by hand or by json.dump-style tools often end so, and are fine when the
    // line parses; a line that does not is what a writer killed mid-line leaves, and the error says so.
    line += 1;
    const record = parseLine(carry, { file, line });
    if (record === null) return;
    if (record instanceof DataError) {
      yield new DataError(
        `the last line has no newline and is not valid JSON: the file looks cut off while being written`,
        { file, line },
      );
    } else yield record;
  }
}

/** A line's value, its error, or null for a blank line. */
function parseLine(raw: string, source: RecordSource): JsonRecord | DataError | null {
  const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  if (text.trim() === '') return null;
  try {
    return { value: JSON.parse(text), source };
  } catch (error) {
    return new DataError(jsonError(error), source);
  }
}

async function* readJsonArray(file: string): AsyncGenerator<JsonRecord | DataError> {
  let value: unknown;
  try {
    value = JSON.parse((await readFile(file, 'utf8')).replace(/^\uFEFF/, ''));
  } catch (error) {
    throw new DataError(`the file starts with '[' but is ${jsonError(error)}`, { file });
  }
  if (!Array.isArray(value)) throw new DataError('the file starts with \'[\' but is not a JSON array', { file });
  for (const [index, item] of value.entries()) yield { value: item, source: { file, index } };
}

/**
 * Records of a JSONL (or JSON array) file, each parsed by `parseRecord`, which throws a DataError naming the
 * field. Iterating reads the file afresh; `stats` describes the latest pass.
 */
export class RecordReader<T> implements AsyncIterable<T> {
  readonly stats: ReadStats = { records: 0, skipped: 0, errors: [] };
  readonly #options: z.output<typeof ReadOptions>;

  constructor(
    readonly file: string,
    private readonly parseRecord: (value: unknown, source: RecordSource) => T,
    options: ReadOptions = {},
  ) {
    parse(z.string().min(1), file, 'RecordReader: file');
    this.#options = parse(ReadOptions, options, 'RecordReader: options');
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    Object.assign(this.stats, { records: 0, skipped: 0, errors: [] });
    for await (const item of readJsonValues(this.file)) {
      let record: T;
      try {
        if (item instanceof DataError) throw item;
        record = this.parseRecord(item.value, item.source);
      } catch (error) {
        if (!(error instanceof DataError) || this.#options.onError === 'throw') throw error;
        this.stats.skipped += 1;
        if (this.stats.errors.length < MAX_KEPT_ERRORS) this.stats.errors.push(error);
        this.#options.onSkip?.(error);
        continue;
      }
      this.stats.records += 1;
      yield record;
    }
  }

  /** Every record, in file order. */
  async toArray(): Promise<T[]> {
    const all: T[] = [];
    for await (const record of this) all.push(record);
    return all;
  }
}

function serialize(record: unknown): string {
  const line = JSON.stringify(record);
  if (typeof line !== 'string') throw new TypeError(`cannot write ${String(record)} as a JSON line`);
  return line + '\n'; // JSON.stringify escapes newlines inside strings, so one record is one line
}

/**
 * Writes records to `file` as JSONL atomically: a crash leaves the old file or the new, never part of one.
 * Returns how many records were written.
 */
export async function writeJsonl(file: string, records: Iterable<unknown> | AsyncIterable<unknown>): Promise<number> {
  parse(z.string().min(1), file, 'writeJsonl: file');
  let count = 0;
  await writeAtomically(file, async (handle) => {
    let buffer = '';
    for await (const record of records as AsyncIterable<unknown>) {
      buffer += serialize(record);
      count += 1;
      if (buffer.length >= 1 << 20) {
        await handle.write(buffer);
        buffer = '';
      }
    }
    await handle.write(buffer);
  });
  return count;
}

/** The records of a JSONL file that pass `keep`, written atomically to `to` (a subset: one split, one length). */
export async function filterJsonl(from: string, to: string, keep: (record: Record<string, unknown>) => boolean): Promise<number> {
  checkInputFile(from, 'a JSONL file');
  const records = (await readFile(from, 'utf8')).split('\n').filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return writeJsonl(to, records.filter(keep));
}

/** What opening an append found at the end of the file: a last line without its newline. */
export interface RepairedTail {
  /** 'removed': it was not valid JSON (a writer killed mid-line) and was cut off. 'terminated': it was a whole
   * record missing only its newline (written by hand or another tool), so the newline was added. */
  action: 'removed' | 'terminated';
  bytes: number;
  text: string;
}

/**
 * Appends records to a JSONL file (created if missing), each `append` one write of whole lines. On open, a last
 * line without its newline is repaired and reported in `repaired`: cut off when it is not valid JSON (a writer
 * killed mid-line), ended with a newline when it is. So the file only ever gains whole records, and a resumed run
 * continues a clean file.
 */
export class JsonlAppender implements AsyncDisposable {
  private constructor(
    readonly file: string,
    private readonly handle: import('node:fs/promises').FileHandle,
    readonly repaired: RepairedTail | null,
  ) {}

  static async open(file: string): Promise<JsonlAppender> {
    parse(z.string().min(1), file, 'JsonlAppender.open: file');
    prepareOutputFile(file, 'a JSONL file to append to');
    const repaired = await repairTail(file);
    return new JsonlAppender(file, await open(file, 'a'), repaired);
  }

  async append(...records: unknown[]): Promise<void> {
    const text = records.map(serialize).join('');
    if (text) await this.handle.write(text);
  }

  /** Flushes to disk (fsync). */
  async sync(): Promise<void> {
    await this.handle.sync();
  }

  async close(): Promise<void> {
    await this.handle.sync();
    await this.handle.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return text.trim() !== '';
  } catch {
    return false;
  }
}

async function repairTail(file: string): Promise<RepairedTail | null> {
  let handle;
  try {
    handle = await open(file, 'r+');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const { size } = await handle.stat();
    if (size === 0) return null;
    // Scan back from the end for the last newline, 64 KiB at a time.
    const block = 1 << 16;
    let end = size;
    let cut = -1;
    const last = Buffer.alloc(1);
    await handle.read(last, 0, 1, size - 1);
    if (last[0] === 0x0a) return null;
    while (end > 0 && cut < 0) {
      const start = Math.max(0, end - block);
      const buffer = Buffer.alloc(end - start);
      await handle.read(buffer, 0, buffer.length, start);
      const at = buffer.lastIndexOf(0x0a);
      if (at >= 0) cut = start + at + 1;
      end = start;
    }
    if (cut < 0) cut = 0;
    const tail = Buffer.alloc(size - cut);
    await handle.read(tail, 0, tail.length, cut);
    const text = tail.toString('utf8');
    if (isJson(text)) {
      await handle.write('\n', size);
      await handle.sync();
      return { action: 'terminated', bytes: tail.length, text };
    }
    await handle.truncate(cut);
    await handle.sync();
    return { action: 'removed', bytes: tail.length, text };
  } finally {
    await handle.close();
  }
}

/** A JSON file that appears whole or not at all (as writeJsonl's JSONL files do). */
export async function writeJsonFile(file: string, value: unknown): Promise<void> {
  await writeTextFile(file, JSON.stringify(value, null, 2) + '\n');
}

// Two writes of one file in the same millisecond (a report rewritten in a loop) must not share a temporary file.
let tempCounter = 0;

/**
 * A text file that appears whole or not at all: written to a temporary file beside it, fsynced, then renamed over
 * it. A failed write leaves the old file (if any) and no temporary file behind.
 */
export async function writeTextFile(file: string, text: string): Promise<void> {
  parse(z.string().min(1), file, 'writeTextFile: file');
  await writeAtomically(file, (handle) => handle.writeFile(text));
}

/** `write` fills a temporary file beside `file`; it is fsynced and renamed over `file`, or removed on failure. */
async function writeAtomically(file: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  prepareOutputFile(file);
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.${Date.now()}.${tempCounter++}.tmp`);
  const handle = await open(temp, 'w');
  try {
    await write(handle);
    await handle.sync();
    await handle.close();
    await rename(temp, file);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  }
}
