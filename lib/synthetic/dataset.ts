// `tpo synth`'s work: a folder with the synthetic world's videos (real encoded files), their annotations, SFT data,
// benchmarks, the world's tokenizer and the tiny model's config:
//
//   synth.json                           what was made and with which options (checked on a rerun)
//   videos/<split>-<n>.mp4               H.264 (or MPEG-4) files, 64 x 64 at 8 fps by default
//   <split>-annotations.jsonl            TimeWarp form {video, description, scene_timestamps} + the events
//   <split>-sft.jsonl                    {id, video, prompt, answer}: every question, open and multiple choice
//   <split>-benchmark.jsonl              {id, video, question, options, answer}: multiple choice, with categories
//   model/                               config.json, preprocessor_config.json, tokenizer.json, tokenizer_config.json
//
// Every file is written atomically. Videos already present are kept (each appeared whole or not at all), so an
// interrupted run resumes where it stopped and a rerun with more videos renders only the new ones.
import { access, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

import { z } from 'zod';

import { writeJsonFile, writeJsonl } from '../data/jsonl.js';
import { prepareOutputDir, prepareWritableDir } from '../paths.js';
import { parse } from '../validate.js';
import { packageVersion } from '../version.js';
import { annotation } from './captions.js';
import {
  tinyModelConfig, TINY_PREPROCESSOR_CONFIG, tinyVideoLlavaConfig, TINY_VIDEO_LLAVA_PREPROCESSOR_CONFIG,
  TINY_VIDEO_LLAMA3_PROCESSOR_CONFIG, tinyVideoLlama3Config, TINY_INTERNVL_PROCESSOR_CONFIG, tinyInternVLConfig,
  TINY_QWEN2_5_VL_PROCESSOR_CONFIG, tinyQwen2_5VLConfig,
} from './model-config.js';
import { makeQuestions } from './questions.js';
import { deriveSeed, Random } from './random.js';
import { type BenchmarkRecord, LetterSchedule, questionRecords, type SftRecord } from './records.js';
import { encodeVideo, VideoEncodeOptions } from '../video/encode.js';
import { renderVideo } from './render.js';
import { type Split, SPLITS, splitSeeds, splitSizes } from './splits.js';
import { type WorldFamily, worldTokenizer, worldTokenizerFiles } from './tokenizer.js';
import { makeVideo, type SynthVideo, WorldOptions } from './world.js';

const Fraction = z.number().min(0).max(1);

export const SynthOptions = z.strictObject({
  out: z.string().min(1),
  /** Videos in all splits together. */
  videos: z.int().min(1).max(1_000_000).default(100),
  seed: z.int().min(0).max(0xffffffff).default(0),
  /** Train, validation and test fractions. */
  split: z.tuple([Fraction, Fraction, Fraction]).refine((f) => f[0] + f[1] + f[2] > 0, 'fractions must not all be 0')
    .default([0.8, 0.1, 0.1]),
  world: WorldOptions.prefault({}),
  encode: VideoEncodeOptions.omit({ fps: true }).prefault({}),
  /** false: annotations and questions only (records still name videos/<id>.mp4). */
  writeVideos: z.boolean().default(true),
  /** Videos drawn and encoded at once. */
  concurrency: z.int().min(1).max(64).default(() => availableParallelism()),
  /** Re-render videos already present, and overwrite a folder made with other options. */
  force: z.boolean().default(false),
  /** The tiny model's architecture under model/: LLaVA-Video's (SigLIP, pooling, Qwen2) or Video-LLaVA's (CLIP, LLaMA). */
  model: z.enum(['llava-video', 'video-llava', 'video-llama3', 'internvl', 'qwen2.5-vl']).default('llava-video'),
});
export type SynthOptions = z.input<typeof SynthOptions>;

export interface SynthProgress {
  done: number;
  total: number;
  /** Videos found already written. */
  skipped: number;
  seconds: number;
}

export interface SynthSummary {
  out: string;
  videos: Record<Split, number>;
  questions: Record<Split, number>;
  rendered: number;
  skipped: number;
  /** The encoder used for the videos written in this run ('' when none were). */
  codec: string;
  bytes: number;
  seconds: number;
}

interface Planned {
  split: Split;
  id: string;
  /** Relative to the dataset folder. */
  path: string;
  video: SynthVideo;
}

const exists = (path: string) => access(path).then(() => true, () => false);

/** The options that decide the content of every file; a folder made with others must not be mixed with them. */
function identity(o: z.output<typeof SynthOptions>) {
  const { threads: _, ...encode } = o.encode;
  return { seed: o.seed, world: o.world, encode };
}

async function checkFolder(o: z.output<typeof SynthOptions>): Promise<void> {
  const manifest = join(o.out, 'synth.json');
  if (o.force || !(await exists(manifest))) return;
  const previous = JSON.parse(await readFile(manifest, 'utf8')) as { identity?: unknown };
  if (JSON.stringify(previous.identity) !== JSON.stringify(identity(o))) {
    throw Object.assign(
      new Error(
        `${o.out} holds a synthetic dataset made with other options (${JSON.stringify(previous.identity)}); ` +
          'use another folder, or --force to overwrite it',
      ),
      { code: 'ERR_TPO_ARGUMENT' },
    );
  }
}

function plan(o: z.output<typeof SynthOptions>): Planned[] {
  const sizes = splitSizes(o.videos, o.split);
  return SPLITS.flatMap((split) =>
    splitSeeds(o.seed, split, sizes[split]).map((seed, i) => {
      const id = `${split}-${String(i).padStart(5, '0')}`;
      return { split, id, path: `videos/${id}.mp4`, video: makeVideo(seed, o.world) };
    }),
  );
}

/** Renders and encodes the planned videos, `concurrency` at a time; files already present are kept. */
async function writeVideos(
  o: z.output<typeof SynthOptions>, planned: Planned[], onProgress?: (p: SynthProgress) => void,
): Promise<{ rendered: number; skipped: number; codec: string; bytes: number }> {
  const started = performance.now();
  const result = { rendered: 0, skipped: 0, codec: '', bytes: 0 };
  let next = 0;
  let done = 0;
  const report = () =>
    onProgress?.({ done, total: planned.length, skipped: result.skipped, seconds: (performance.now() - started) / 1000 });
  const worker = async () => {
    while (next < planned.length) {
      const item = planned[next++]!;
      const file = join(o.out, item.path);
      if (!o.force && (await exists(file))) {
        result.skipped += 1;
      } else {
        const frames = await renderVideo(item.video);
        try {
          const written = await encodeVideo(frames, file, { ...o.encode, fps: item.video.fps });
          result.rendered += 1;
          result.codec = written.codec;
          result.bytes += written.bytes;
        } finally {
          frames.dispose();
        }
      }
      done += 1;
      report();
    }
  };
  report();
  await Promise.all(Array.from({ length: Math.min(o.concurrency, planned.length) }, worker));
  return result;
}

/** Annotations, SFT records and benchmark items of one split, written as JSONL. Returns the question count. */
async function writeSplit(o: z.output<typeof SynthOptions>, split: Split, planned: Planned[]): Promise<number> {
  const letters = new LetterSchedule(deriveSeed(o.seed, SPLITS.indexOf(split), 0x1e77e5));
  const sft: SftRecord[] = [];
  const benchmark: BenchmarkRecord[] = [];
  for (const item of planned) {
    const random = new Random(deriveSeed(item.video.seed, 2));
    const ref = { id: item.id, video: item.path, length: item.video.length };
    for (const question of makeQuestions(item.video, deriveSeed(item.video.seed, 1))) {
      const records = questionRecords(ref, question, letters.next(), random);
      sft.push(records.open, records.choice);
      benchmark.push(records.benchmark);
    }
  }
  await writeJsonl(join(o.out, `${split}-annotations.jsonl`), planned.map((p) => annotation(p.video, p.id, p.path)));
  await writeJsonl(join(o.out, `${split}-sft.jsonl`), sft);
  await writeJsonl(join(o.out, `${split}-benchmark.jsonl`), benchmark);
  return benchmark.length;
}

/**
 * The world's tokenizer and a tiny model's config, preprocessor config included, into `dir`: LLaVA-Video's
 * architecture (the default), Video-LLaVA's (`video-llava`: its tokenizer variant, config and processor) or
 * VideoLLaMA3's (`video-llama3`: Qwen2's chat format with its placeholder tokens, config, video processor), InternVL's
 * and Qwen2.5-VL's (their configs and video processors, as transformers saves them).
 */
export async function writeModelFiles(dir: string, family: WorldFamily = 'llava-video'): Promise<void> {
  prepareOutputDir(dir, 'a model folder');
  const files = worldTokenizerFiles(family);
  await writeJsonFile(join(dir, 'tokenizer.json'), files['tokenizer.json']);
  await writeJsonFile(join(dir, 'tokenizer_config.json'), files['tokenizer_config.json']);
  const tokenizer = worldTokenizer(family);
  if (family === 'video-llama3') {
    await writeJsonFile(join(dir, 'config.json'), tinyVideoLlama3Config(tokenizer));
    await writeJsonFile(join(dir, 'video_preprocessor_config.json'), TINY_VIDEO_LLAMA3_PROCESSOR_CONFIG);
    return;
  }
  if (family === 'qwen2.5-vl') {
    await writeJsonFile(join(dir, 'config.json'), tinyQwen2_5VLConfig(tokenizer));
    await writeJsonFile(join(dir, 'video_preprocessor_config.json'), TINY_QWEN2_5_VL_PROCESSOR_CONFIG);
    return;
  }
  if (family === 'internvl') {
    await writeJsonFile(join(dir, 'config.json'), tinyInternVLConfig(tokenizer));
    await writeJsonFile(join(dir, 'video_preprocessor_config.json'), TINY_INTERNVL_PROCESSOR_CONFIG);
    return;
  }
  const videoLlava = family === 'video-llava';
  await writeJsonFile(join(dir, 'config.json'), videoLlava ? tinyVideoLlavaConfig(tokenizer) : tinyModelConfig(tokenizer));
  await writeJsonFile(join(dir, 'preprocessor_config.json'), videoLlava ? TINY_VIDEO_LLAVA_PREPROCESSOR_CONFIG : TINY_PREPROCESSOR_CONFIG);
}

/** Writes a synthetic dataset folder (see the top of this file). */
export async function writeSynthDataset(
  options: SynthOptions, onProgress?: (p: SynthProgress) => void,
): Promise<SynthSummary> {
  const o = parse(SynthOptions, options, 'synth options');
  const started = performance.now();
  prepareWritableDir(o.out, 'a synthetic dataset folder');
  prepareOutputDir(join(o.out, 'videos'), 'the videos folder');
  await checkFolder(o);
  const manifest = {
    tpo: packageVersion(), identity: identity(o), videos: o.videos, split: o.split, complete: false,
  };
  await writeJsonFile(join(o.out, 'synth.json'), manifest);

  const planned = plan(o);
  const written = o.writeVideos
    ? await writeVideos(o, planned, onProgress)
    : { rendered: 0, skipped: 0, codec: '', bytes: 0 };
  const questions = {} as Record<Split, number>;
  const videos = {} as Record<Split, number>;
  for (const split of SPLITS) {
    const items = planned.filter((p) => p.split === split);
    videos[split] = items.length;
    questions[split] = await writeSplit(o, split, items);
  }
  await writeModelFiles(join(o.out, 'model'), o.model);
  const seconds = (performance.now() - started) / 1000;
  await writeJsonFile(join(o.out, 'synth.json'), { ...manifest, complete: true, splits: { videos, questions } });
  return { out: o.out, videos, questions, ...written, seconds };
}
