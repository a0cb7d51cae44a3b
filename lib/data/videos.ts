// Videos of a dataset: where each one is, which are missing (all of them, before training starts), and an order
// of records that groups questions about one video together so one decode serves them all, shuffled by a seed.
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';

import { z } from 'zod';

import { parse } from '../validate.js';
import { type MissingVideo, MissingVideosError, type RecordSource } from './errors.js';

/**
 * Where a record's video is: an absolute path as is; a relative one under `videoRoot` when given, else beside the
 * dataset file (so a dataset folder can be moved whole).
 */
export function resolveVideoPath(video: string, datasetFile: string, videoRoot?: string): string {
  if (isAbsolute(video)) return video;
  return resolve(videoRoot ?? dirname(datasetFile), video);
}

/** What the video checks and grouping need of a record. */
export interface HasVideo {
  video: string;
  videoPath: string;
  source?: RecordSource;
}

const CHECK_CONCURRENCY = 32;

/** Why an existing path cannot be a video (a FIFO blocks the decoder forever), or null when it can. */
function unusable(s: Stats): string | null {
  if (s.isFile() || s.isDirectory()) return null;
  return s.isFIFO() ? 'a FIFO (named pipe), not a video file' : 'not a regular file or a folder of frames';
}

/**
 * Every missing video of `records`, once per path, in order of first use. A folder counts as present (LLaVA-Hound
 * ships videos as folders of frames).
 */
export async function findMissingVideos(records: Iterable<HasVideo> | AsyncIterable<HasVideo>): Promise<MissingVideo[]> {
  const byPath = new Map<string, MissingVideo>();
  for await (const r of records as AsyncIterable<HasVideo>) {
    const seen = byPath.get(r.videoPath);
    if (seen) seen.records += 1;
    else byPath.set(r.videoPath, { path: r.videoPath, video: r.video, records: 1, firstSource: r.source ?? { file: '?' } });
  }
  const entries = [...byPath.values()];
  const problems = new Array<string | null | undefined>(entries.length);
  let next = 0;
  const worker = async () => {
    while (next < entries.length) {
      const i = next++;
      problems[i] = await stat(entries[i]!.path).then(unusable, () => undefined);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CHECK_CONCURRENCY, entries.length) }, worker));
  // undefined: missing; a string: there but not a video a decoder can open without blocking; null: fine.
  return entries.flatMap((e, i) => (problems[i] === null ? [] : [problems[i] ? { ...e, problem: problems[i] } : e]));
}

/** Throws a MissingVideosError listing every missing video, or returns when all are there. */
export async function assertVideosExist(records: Iterable<HasVideo> | AsyncIterable<HasVideo>): Promise<void> {
  const missing = await findMissingVideos(records);
  if (missing.length) throw new MissingVideosError(missing);
}

export interface VideoGroup<T> {
  videoPath: string;
  records: T[];
}

/** Records grouped by video path, groups in order of first appearance, records in file order within a group. */
export function groupByVideo<T extends { videoPath: string }>(records: Iterable<T>): VideoGroup<T>[] {
  const groups = new Map<string, T[]>();
  for (const r of records) {
    const list = groups.get(r.videoPath);
    if (list) list.push(r);
    else groups.set(r.videoPath, [r]);
  }
  return [...groups].map(([videoPath, list]) => ({ videoPath, records: list }));
}

const Seed = z.int().min(0).max(0xffffffff);

/**
 * mulberry32 (Tommy Ettinger's 32-bit generator): small, fast, well tested, and the same numbers on every platform
 * and Node version, which is what a reproducible data order needs. Returns floats in [0, 1).
 */
export function mulberry32(seed: number): () => number {
  let a = parse(Seed, seed, 'mulberry32: seed') >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A shuffled copy (Fisher–Yates) whose order depends only on `seed`. */
export function seededShuffle<T>(items: readonly T[], seed: number | (() => number)): T[] {
  const random = typeof seed === 'function' ? seed : mulberry32(seed);
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const BatchOptions = z.strictObject({
  batchSize: z.int().positive(),
  /** The order is a function of seed and epoch only. */
  seed: Seed.default(0),
  /** Each epoch gets its own order from the same seed. */
  epoch: z.int().nonnegative().default(0),
  /** Shuffle (default), or keep videos in order of first appearance and records in file order (evaluation). */
  shuffle: z.boolean().default(true),
  /** Drop a last batch smaller than batchSize. */
  dropLast: z.boolean().default(false),
});
export type BatchOptions = z.input<typeof BatchOptions>;

/** One generator seed per (seed, epoch): the seed's first draw mixed with the epoch, so every epoch differs. */
function epochSeed(seed: number, epoch: number): number {
  const first = Math.floor(mulberry32(seed)() * 4294967296);
  return (first ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0;
}

export interface Batch<T> {
  index: number;
  records: T[];
  /** The batch's records by video: decode each video once for all its records. */
  groups: VideoGroup<T>[];
}

/**
 * Batches of `batchSize` records in which the records of one video sit together: the video groups are shuffled,
 * then the records within each group, then the sequence is cut into batches. A video's records span two batches
 * only where a batch boundary falls inside its group, so each video is decoded once per batch it is in.
 */
export function videoBatches<T extends { videoPath: string }>(records: readonly T[], options: BatchOptions): Batch<T>[] {
  const { batchSize, seed, epoch, shuffle, dropLast } = parse(BatchOptions, options, 'videoBatches: options');
  const random = mulberry32(epochSeed(seed, epoch));
  const groups = groupByVideo(records);
  const ordered = shuffle
    ? seededShuffle(groups, random).flatMap((g) => seededShuffle(g.records, random))
    : groups.flatMap((g) => g.records);
  const batches: Batch<T>[] = [];
  for (let start = 0; start < ordered.length; start += batchSize) {
    const slice = ordered.slice(start, start + batchSize);
    if (dropLast && slice.length < batchSize) break;
    batches.push({ index: batches.length, records: slice, groups: groupByVideo(slice) });
  }
  return batches;
}
