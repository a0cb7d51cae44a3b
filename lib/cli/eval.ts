// `tpo eval`: multiple-choice accuracy of a model (and adapter) on a benchmark file (lib/eval/), a progress bar
// on stderr, a table (or JSON) on stdout, every sample in the --out file.
import { parseArgs } from 'node:util';

import { EVAL_FORMATS } from '../eval/formats.js';
import { EvalConfig, evaluate, formatResults, type ResolvedEvalConfig } from '../eval/evaluate.js';
import { parse, ValidationError } from '../validate.js';
import { ProgressBar } from './progress.js';

export const EVAL_USAGE = `  eval --model DIR --benchmark FILE [options]
                                        multiple-choice accuracy on a benchmark, overall and per category
      --format F          auto | ${EVAL_FORMATS.join(' | ')} (default auto: told by the fields)
      --video-root DIR    where relative video paths start (default: the benchmark file's folder)
      --frames N          frames sampled uniformly from each video (default 16; np.linspace over the frames)
      --max-frames-num N  the same, by lmms-eval's name for it
      --method M          loglik: rank the options by log-likelihood (default); generate: greedy answer, letter parsed
      --adapter DIR       a LoRA adapter (PEFT layout) to load onto the model
      --limit N           only the first N questions
      --max-new-tokens N  generation length for --method generate (default 16)
      --out PATH          FILE.json: the results JSON, every sample included (written atomically); a folder:
                          lmms-eval's layout (<model>/<date>_results.json, <date>_samples_<task>.jsonl)
      --json              print the results as JSON (without the samples) instead of a table`;

/** A number flag, or undefined when absent: zod then checks it and names the field. */
function num(value: string | undefined): number | undefined {
  return value === undefined ? undefined : value.trim() === '' ? Number.NaN : Number(value);
}

/** Each EvalConfig field's flag, so an error names what the user typed. */
const FLAGS: Record<string, string> = {
  model: '--model', benchmark: '--benchmark', format: '--format', videoRoot: '--video-root', frames: '--frames',
  method: '--method', adapter: '--adapter', limit: '--limit', maxNewTokens: '--max-new-tokens', out: '--out',
};

/** Flags -> EvalConfig, validated by zod so a bad value names its flag. */
export function evalConfigFromArgs(argv: string[]): { config: ResolvedEvalConfig; json: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, benchmark: { type: 'string' }, format: { type: 'string' }, 'video-root': { type: 'string' },
      frames: { type: 'string' }, 'max-frames-num': { type: 'string' }, method: { type: 'string' }, adapter: { type: 'string' }, limit: { type: 'string' },
      'max-new-tokens': { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean', default: false },
    },
  });
  if (values.frames !== undefined && values['max-frames-num'] !== undefined && values.frames !== values['max-frames-num']) {
    throw new ValidationError('tpo eval', [{ code: 'custom', path: ['--max-frames-num'], message: `is --frames by lmms-eval's name; --frames says ${values.frames}`, input: values['max-frames-num'] }]);
  }
  const raw = {
    model: values.model, benchmark: values.benchmark, format: values.format, videoRoot: values['video-root'],
    frames: num(values.frames ?? values['max-frames-num']), method: values.method, adapter: values.adapter, limit: num(values.limit),
    maxNewTokens: num(values['max-new-tokens']), out: values.out,
  };
  const defined = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
  try {
    return { config: parse(EvalConfig, defined, 'tpo eval'), json: values.json };
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const issues = error.issues.map((i) => ({ ...i, path: i.path.map((p) => FLAGS[String(p)] ?? p) }));
    throw new ValidationError('tpo eval', issues);
  }
}

export async function runEval(argv: string[]): Promise<number> {
  const { config, json } = evalConfigFromArgs(argv);
  let bar: ProgressBar | undefined;
  const results = await evaluate(config, (done, total) => {
    bar ??= new ProgressBar(total, { label: 'eval', unit: 'questions' });
    bar.update(done);
  });
  bar?.finish();
  if (json) {
    const { samples: _samples, ...summary } = results;
    console.log(JSON.stringify(summary, null, 2));
  } else {
    console.log(formatResults(results));
    if (config.out) console.log(`\nsamples and results: ${config.out}`);
  }
  return 0;
}
