// `tpo eval`: multiple-choice accuracy of a model (and adapter) on a benchmark file (lib/eval/), a progress bar
// on stderr, a table (or JSON) on stdout, every sample in the --out file.
import { isSecondaryRank } from '../dist/config.js';
import { EVAL_FORMATS } from '../eval/formats.js';
import { EvalConfig, evaluate, formatResults, type ResolvedEvalConfig } from '../eval/evaluate.js';
import { parseFlagConfig, parseFlags, UsageError } from './flags.js';
import { ProgressBar } from './progress.js';

export const EVAL_USAGE = `  eval --model DIR --benchmark FILE [options]
                                        multiple-choice accuracy on a benchmark, overall and per category
      --format F          auto | ${EVAL_FORMATS.join(' | ')} (default auto: told by the fields)
      --video-root DIR    where relative video paths start (default: the benchmark file's folder)
      --frames N          frames sampled uniformly from each video (default: the model's, Video-LLaVA 8, else 16;
                          np.linspace over the frames)
      --max-frames-num N  the same, by lmms-eval's name for it
      --sampling S        uniform: --frames evenly spaced (default; TPO's recipe); processor: as the model's own
                          processor samples each video (VideoLLaMA3, Qwen2.5-VL, InternVL: sample_frames with the
                          folder's video processor config; other architectures sample uniformly)
      --sampling-fps F    --sampling processor: frames a second (the processor call's fps, over the config's)
      --sampling-frames N --sampling processor: the processor call's num_frames, over the config's
      --method M          loglik: rank the options by log-likelihood (default); generate: greedy answer, letter parsed
      --adapter DIR       a LoRA adapter (PEFT layout) to load onto the model
      --limit N           only the first N questions
      --max-new-tokens N  generation length for --method generate (default 16)
      --on-video-error E  skip: a video that cannot be decoded skips its questions, counted (default); stop: fail
      --out PATH          FILE.json: the results JSON, every sample included (written atomically; checked before the
                          run); a folder: lmms-eval's layout (<model>/<date>_results.json, <date>_samples_<task>.jsonl)
      --json              print the results as JSON (without the samples) instead of a table`;

/** Each EvalConfig field's flag, so an error names what the user typed. */
const FLAGS: Record<string, string> = {
  model: '--model', benchmark: '--benchmark', format: '--format', videoRoot: '--video-root', frames: '--frames',
  method: '--method', adapter: '--adapter', limit: '--limit', maxNewTokens: '--max-new-tokens', out: '--out',
  onVideoError: '--on-video-error', sampling: '--sampling', samplingFps: '--sampling-fps', samplingFrames: '--sampling-frames',
};

/** Flags -> EvalConfig, validated by zod so a bad value names its flag. */
export function evalConfigFromArgs(argv: string[]): { config: ResolvedEvalConfig; json: boolean } {
  const { values } = parseFlags(argv, {
    model: 'string', benchmark: 'string', format: 'string', 'video-root': 'string', frames: 'number', 'max-frames-num': 'number',
    method: 'string', adapter: 'string', limit: 'number', 'max-new-tokens': 'number', out: 'string', 'on-video-error': 'string',
    sampling: 'string', 'sampling-fps': 'number', 'sampling-frames': 'number', json: 'boolean',
  });
  if (values.frames !== undefined && values['max-frames-num'] !== undefined && values.frames !== values['max-frames-num']) {
    throw new UsageError(`tpo eval: --max-frames-num is --frames by lmms-eval's name, and they disagree (${values['max-frames-num']}, ${values.frames})`);
  }
  const raw = {
    model: values.model, benchmark: values.benchmark, format: values.format, videoRoot: values['video-root'],
    frames: values.frames ?? values['max-frames-num'], method: values.method, adapter: values.adapter, limit: values.limit,
    maxNewTokens: values['max-new-tokens'], out: values.out, onVideoError: values['on-video-error'],
    sampling: values.sampling, samplingFps: values['sampling-fps'], samplingFrames: values['sampling-frames'],
  };
  return { config: parseFlagConfig(EvalConfig, raw, 'tpo eval', FLAGS), json: values.json };
}

export async function runEval(argv: string[]): Promise<number> {
  const { config, json } = evalConfigFromArgs(argv);
  let bar: ProgressBar | undefined;
  const secondary = isSecondaryRank();  // rank 0 of several reports the run
  const results = await evaluate(config, (done, total) => {
    if (secondary) return;
    bar ??= new ProgressBar(total, { label: 'eval', unit: 'questions' });
    bar.update(done);
  });
  bar?.finish();
  if (secondary) return 0;
  if (json) {
    const { samples: _samples, ...summary } = results;
    console.log(JSON.stringify(summary, null, 2));
  } else {
    console.log(formatResults(results));
    if (config.out) console.log(`\nsamples and results: ${config.out}`);
  }
  return 0;
}
