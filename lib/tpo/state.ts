// What a generation run has written so far, read back from its two files: which questions are done (kept, dropped
// or skipped), which (video, question) pairs were asked, and the summary counts. A resumed run continues from it,
// and its summary can never lag behind the files because it is rebuilt from them.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

import { DataError } from '../data/errors.js';
import { normalizeAnswer } from '../data/answers.js';
import { WrittenRecord } from './records.js';

export interface GenerateSummary {
  kept: number;
  /** Dropped pairs and skipped questions or videos, by reason. */
  dropped: Record<string, number>;
  byKind: Record<string, { kept: number; dropped: number }>;
  /** Against the reference answers: how often each side's answer was right (exact for the synthetic world). */
  preferredCorrect: number;
  dispreferredCorrect: number;
  /** Pairs judged (skips are not). */
  judged: number;
}

export const newSummary = (): GenerateSummary => ({ kept: 0, dropped: {}, byKind: {}, preferredCorrect: 0, dispreferredCorrect: 0, judged: 0 });

/** Same video, same question (after normalisation): asked once. */
export const questionKey = (video: string, prompt: string) => `${video}\n${normalizeAnswer(prompt)}`;

/** The records of a JSONL file this run wrote; a torn last line (a kill mid-write) is left out: the appender cuts it. */
export async function writtenRecords(file: string): Promise<WrittenRecord[]> {
  if (!existsSync(file)) return [];
  const lines = (await readFile(file, 'utf8')).split('\n');
  const out: WrittenRecord[] = [];
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      if (i === lines.length - 1) continue;  // the torn last line
      throw new DataError('not valid JSON: this file is written by tpo generate, one record a line', { file, line: i + 1 });
    }
    const record = WrittenRecord.safeParse(value);
    if (!record.success) throw new DataError(`not a record tpo generate writes (${record.error.issues[0]?.message})`, { file, line: i + 1 });
    out.push(value as WrittenRecord);  // as written (a merge of ranks' files copies records verbatim)
  }
  return out;
}

export class GenerationState {
  readonly summary: GenerateSummary = newSummary();
  readonly #done = new Set<string>();
  readonly #asked = new Set<string>();

  /** The state of `kept` and `dropped` records (in memory: tests and a fresh run start from []). */
  constructor(kept: readonly WrittenRecord[] = [], dropped: readonly WrittenRecord[] = []) {
    for (const r of kept) this.#record(r, true);
    for (const r of dropped) this.#record(r, false);
  }

  /** Reads the pairs file and the dropped file of an earlier run (absent files: a fresh start). */
  static async load(pairsFile: string, droppedFile: string): Promise<GenerationState> {
    return new GenerationState(await writtenRecords(pairsFile), await writtenRecords(droppedFile));
  }

  /** The state of several runs' files at once (the ranks' of a multi-process run, and its merged files). */
  static async loadAll(pairsFiles: readonly string[], droppedFiles: readonly string[]): Promise<GenerationState> {
    const read = async (files: readonly string[]) => (await Promise.all(files.map(writtenRecords))).flat();
    return new GenerationState(await read(pairsFiles), await read(droppedFiles));
  }

  #record(r: WrittenRecord, keep: boolean): void {
    this.#done.add(r.id);
    if (r.prompt && r.video) this.#asked.add(questionKey(r.video, r.prompt));
    this.count(r, keep);
  }

  /** Ids written by this run or an earlier one: not asked again. */
  get done(): ReadonlySet<string> {
    return this.#done;
  }

  isDone(id: string): boolean {
    return this.#done.has(id);
  }

  markDone(id: string): void {
    this.#done.add(id);
  }

  /** Marks the question asked about the video; false when it was already (a duplicate, asked once). */
  ask(video: string, prompt: string): boolean {
    const key = questionKey(video, prompt);
    if (this.#asked.has(key)) return false;
    this.#asked.add(key);
    return true;
  }

  /** Counts a record in the summary: kept, or dropped for its reason. */
  count(r: { kind: string; reason?: string | undefined; judge?: WrittenRecord['judge'] }, keep: boolean): void {
    const s = this.summary;
    const kind = (s.byKind[r.kind] ??= { kept: 0, dropped: 0 });
    if (r.judge) {
      s.judged++;
      s.preferredCorrect += r.judge.preferredCorrect ? 1 : 0;
      s.dispreferredCorrect += r.judge.dispreferredCorrect ? 1 : 0;
    }
    if (keep) {
      s.kept++;
      kind.kept++;
    } else {
      const reason = r.reason ?? 'unknown';
      s.dropped[reason] = (s.dropped[reason] ?? 0) + 1;
      kind.dropped++;
    }
  }
}
