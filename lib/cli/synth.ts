// `tpo synth`: writes a synthetic temporal dataset folder (lib/synthetic/dataset.ts) from command-line flags,
// with a progress line on stderr.
import { SynthOptions, type SynthProgress, type SynthSummary, writeSynthDataset } from '../synthetic/dataset.js';
import { given, parseFlagConfig, parseFlags } from './flags.js';
import { formatDuration as duration } from './progress.js';

export const SYNTH_USAGE = `  synth --out DIR [options]             a synthetic temporal world: videos, annotations, SFT data, benchmarks,
                                        the world's tokenizer and the tiny model's config
      --videos N          videos in all splits (default 100)
      --seed S            the dataset's seed (default 0)
      --length L          short | long | mixed (default mixed)
      --split T,V,E       train, validation and test fractions (default 0.8,0.1,0.1)
      --size WxH          frame size, even numbers (default 64x64)
      --fps F             frames per second (default 8)
      --noise A           background noise amplitude, 0 for none (default 3)
      --codec C           auto | h264 | mpeg4 (default auto: h264 when FFmpeg has libx264)
      --crf Q             H.264 quality, 0 best .. 51 (default 23)
      --concurrency K     videos made at once (default: one per core)
      --no-videos         annotations and questions only
      --force             re-render existing videos; overwrite a folder made with other options
      --model A           the tiny model's architecture: llava-video (default) | video-llava | video-llama3 | internvl | qwen2.5-vl
      --json              print the summary as JSON`;

/** Flags -> SynthOptions (validated by zod, so a bad value names its flag's field). */
export function synthOptionsFromArgs(argv: string[]): { options: SynthOptions; json: boolean } {
  const { values } = parseFlags(argv, {
    out: 'string', videos: 'number', seed: 'number', length: 'string', split: 'string', size: 'string', fps: 'number',
    noise: 'number', codec: 'string', crf: 'number', concurrency: 'number', 'no-videos': 'boolean', force: 'boolean',
    model: 'string', json: 'boolean',
  });
  const [width, height] = values.size?.split('x').map(Number) ?? [];
  const world = given({ width, height, fps: values.fps, noise: values.noise, length: values.length });
  const encode = given({ codec: values.codec, crf: values.crf });
  const raw = {
    out: values.out, videos: values.videos, seed: values.seed,
    split: values.split?.split(',').map(Number), world, encode, writeVideos: !values['no-videos'],
    concurrency: values.concurrency, force: values.force, model: values.model,
  };
  return { options: parseFlagConfig(SynthOptions, raw, 'tpo synth'), json: values.json };
}

/** A progress line: rewritten in place on a terminal, one line per tenth otherwise (logs stay short). */
export function progressLine(stream: NodeJS.WriteStream = process.stderr): (p: SynthProgress) => void {
  let lastTenth = -1;
  return (p) => {
    const made = p.done - p.skipped;
    const rate = p.seconds > 0 ? made / p.seconds : 0;
    const left = rate > 0 ? (p.total - p.done) / rate : 0;
    const skipped = p.skipped ? `, ${p.skipped} already there` : '';
    const text = `synth: ${p.done}/${p.total} videos (${rate.toFixed(1)}/s${skipped}, ${duration(left)} left)`;
    if (stream.isTTY) {
      stream.write(`\r${text}\x1b[K${p.done === p.total ? '\n' : ''}`);
    } else {
      const tenth = Math.floor((10 * p.done) / Math.max(1, p.total));
      if (tenth !== lastTenth) stream.write(`${text}\n`);
      lastTenth = tenth;
    }
  };
}

export function formatSynth(s: SynthSummary): string {
  const codec = s.codec ? `, ${s.codec}, ${(s.bytes / 2 ** 20).toFixed(1)} MiB` : '';
  return [
    `wrote ${s.out} in ${duration(s.seconds)}`,
    `videos     train ${s.videos.train}, val ${s.videos.val}, test ${s.videos.test} ` +
      `(${s.rendered} rendered${codec}; ${s.skipped} already there)`,
    `questions  train ${s.questions.train}, val ${s.questions.val}, test ${s.questions.test} ` +
      '(each open and multiple choice in <split>-sft.jsonl, multiple choice in <split>-benchmark.jsonl)',
    `model      ${s.out}/model: config.json, preprocessor_config.json (video-llama3, internvl: video_preprocessor_config.json), tokenizer.json, tokenizer_config.json`,
  ].join('\n');
}

export async function runSynth(argv: string[]): Promise<number> {
  const { options, json } = synthOptionsFromArgs(argv);
  const summary = await writeSynthDataset(options, progressLine());
  console.log(json ? JSON.stringify(summary, null, 2) : formatSynth(summary));
  return 0;
}
