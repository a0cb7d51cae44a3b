// Evaluation results in lmms-eval's layout (lmms_eval/loggers/evaluation_tracker.py), so numbers sit beside
// published ones and lmms-eval's readers open them:
//   <out>/<model_name_sanitized>/<date>_results.json      results, configs, versions, n-shot, higher_is_better,
//                                                          n-samples, config, date, task_hashes, model_name, ...
//   <out>/<model_name_sanitized>/<date>_samples_<task>.jsonl   one line a question: doc_id, target, resps,
//                                                          filtered_resps, the metric's per-sample value, the hashes
// Tasks and metrics carry lmms-eval's names: videomme / videomme_percetion_score (percent, lmms-eval's spelling),
// mlvu_dev / mlvu_percetion_score (percent), longvideobench_val_v / lvb_acc (a fraction), and tpo's own benchmark as
// tpo_mc. Every task also reports lm-evaluation-harness's acc (and acc_norm for loglik) with their stderr.
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { writeJsonFile, writeJsonl } from '../data/jsonl.js';
import type { EvalResults, EvalSample } from './evaluate.js';
import type { EvalFormat } from './formats.js';

/** The lmms-eval task, its metric, and whether lmms-eval reports that metric in percent. */
export const LMMS_EVAL_TASKS: Record<EvalFormat, { task: string; metric: string; percent: boolean }> = {
  videomme: { task: 'videomme', metric: 'videomme_percetion_score', percent: true },
  mlvu: { task: 'mlvu_dev', metric: 'mlvu_percetion_score', percent: true },
  longvideobench: { task: 'longvideobench_val_v', metric: 'lvb_acc', percent: false },
  tpo: { task: 'tpo_mc', metric: 'acc', percent: false },
};

/** An --out without a .json name is a folder in lmms-eval's layout. */
export function isLmmsEvalOut(out: string): boolean {
  return !/\.json$/i.test(out);
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** lm-evaluation-harness's mean_stderr: the sample standard deviation over sqrt(n). */
function stderr(values: number[]): number | 'N/A' {
  const n = values.length;
  if (n < 2) return 'N/A';
  const mean = values.reduce((s, x) => s + x, 0) / n;
  const variance = values.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1);
  return Math.sqrt(variance / n);
}

/** lmms-eval's model_name_sanitized: the model path with '/' as '__'. */
function sanitized(name: string): string {
  return name.replace(/^\.?\/+/, '').replace(/\/+$/, '').replace(/\//g, '__').replace(/[^\w.\-]/g, '_') || 'model';
}

/** The per-sample value of the task's metric, in the shape lmms-eval's process_results gives it. */
function sampleMetric(format: EvalFormat, s: EvalSample): unknown {
  const pred = s.prediction ?? '';
  switch (format) {
    case 'videomme':
      return { question_id: s.id, duration: s.category.duration, category: s.category.domain, task_category: s.category.task_type, pred_answer: pred, answer: s.answer };
    case 'mlvu':
      return { question_id: s.id, question_type: s.category.question_type, pred_answer: pred, answer: s.answer };
    case 'longvideobench':
      return { id: s.id, duration_group: s.category.duration_group, question_category: s.category.question_category, answer: s.answer, parsed_pred: pred };
    case 'tpo':
      return s.correct ? 1 : 0;
  }
}

export interface LmmsEvalFiles {
  results: string;
  samples: string;
}

/** Writes `r` as lmms-eval does into `<out>/<model>/`; returns the two files. */
export async function writeLmmsEval(r: EvalResults, out: string): Promise<LmmsEvalFiles> {
  const { task, metric, percent } = LMMS_EVAL_TASKS[r.config.format];
  const loglik = r.config.method === 'loglik';
  const started = Date.parse(r.date) / 1000 - r.seconds;
  // lmms-eval's datetime_str (%Y%m%d_%H%M%S) with ':' made '-', as its date_id.
  const dateId = r.date.replace(/[-:]/g, '').replace('T', '_').replace(/\..*$/, '');
  const dir = join(out, sanitized(r.model.path));
  await mkdir(dir, { recursive: true });

  const correct = r.samples.map((s) => (s.correct ? 1 : 0));
  const correctNorm = r.samples.map((s) => (s.correctNorm ? 1 : 0));
  const taskResults: Record<string, unknown> = {
    alias: task,
    [`${metric},none`]: (percent ? 100 : 1) * r.results.accuracy,
    [`${metric}_stderr,none`]: 'N/A',
  };
  if (metric !== 'acc') Object.assign(taskResults, { 'acc,none': r.results.accuracy, 'acc_stderr,none': stderr(correct) });
  else taskResults['acc_stderr,none'] = stderr(correct);
  if (loglik && r.results.acc_norm !== undefined) Object.assign(taskResults, { 'acc_norm,none': r.results.acc_norm, 'acc_norm_stderr,none': stderr(correctNorm) });

  const samples = r.samples.map((s, docId) => {
    const resps = loglik ? (s.scores ?? []).map((score) => [[score, false]]) : [[s.response ?? '']];
    const filtered = loglik ? (s.scores ?? []).map((score) => [score, false]) : [s.prediction ?? s.response ?? ''];
    return {
      doc_id: docId,
      target: s.answer,
      ...(loglik ? { resps } : {}),
      filtered_resps: filtered,
      [metric]: sampleMetric(r.config.format, s),
      ...(metric !== 'acc' ? { acc: s.correct ? 1 : 0 } : {}),
      ...(loglik && s.correctNorm !== undefined ? { acc_norm: s.correctNorm ? 1 : 0 } : {}),
      doc_hash: sha256(JSON.stringify({ id: s.id, video: s.video, category: s.category })),
      prompt_hash: sha256(s.id),
      target_hash: sha256(s.answer),
      tpo: { id: s.id, video: s.video, category: s.category, prediction: s.prediction, ...(s.parsed ? { parsed: s.parsed } : {}) },
    };
  });

  const uniform = r.sampling.kind === 'uniform';
  const taskConfig = {
    task,
    dataset_path: r.config.benchmark,
    test_split: 'test',
    output_type: loglik ? 'multiple_choice' : 'generate_until',
    ...(loglik ? {} : { generation_kwargs: { max_new_tokens: r.config.maxNewTokens, temperature: 0, top_p: 1.0, num_beams: 1, do_sample: false } }),
    metric_list: [{ metric, aggregation: 'mean', higher_is_better: true }, ...(metric !== 'acc' ? [{ metric: 'acc', aggregation: 'mean', higher_is_better: true }] : [])],
    // processor sampling has no frame count: the rule it ran by instead
    lmms_eval_specific_kwargs: { default: uniform ? { max_frames_num: r.config.frames } : { frame_sampling: r.sampling.kind === 'processor' ? r.sampling.rule : '' } },
    metadata: [{ version: 0.0 }],
  };
  const modelArgs = [`pretrained=${r.model.path}`, ...(r.model.adapter ? [`adapter=${r.model.adapter}`] : []),
    ...(uniform ? [`max_frames_num=${r.config.frames}`] : [])].join(',');
  const taskHash = sha256(samples.map((s, i) => `sample_${i}${s.doc_hash}`).join(''));
  const results = {
    results: { [task]: taskResults },
    group_subtasks: { [task]: [] },
    configs: { [task]: taskConfig },
    versions: { [task]: 0.0 },
    'n-shot': { [task]: 0 },
    higher_is_better: { [task]: { [metric]: true, ...(metric !== 'acc' ? { acc: true } : {}), ...(loglik ? { acc_norm: true } : {}) } },
    // original: the questions asked of the file; effective: those scored (a video that cannot be decoded skips its own).
    'n-samples': { [task]: { original: r.results.n + (r.results.skipped ?? 0), effective: r.results.n } },
    config: {
      model: 'tpo', model_args: modelArgs, batch_size: '1', batch_sizes: [], device: 'cpu', use_cache: null,
      limit: r.config.limit ?? null, bootstrap_iters: 0, gen_kwargs: '', random_seed: 0, numpy_seed: 0, torch_seed: 0, fewshot_seed: 0,
    },
    git_hash: null,
    date: started,
    task_hashes: { [task]: taskHash },
    model_source: 'tpo',
    model_name: r.model.path,
    model_name_sanitized: sanitized(r.model.path),
    system_instruction: null,
    chat_template: null,
    start_time: started,
    end_time: started + r.seconds,
    total_evaluation_time_seconds: String(r.seconds),
    // tpo's own additions: the per-category breakdown, and what ran.
    tpo: { version: r.tpoVersion, method: r.config.method, byCategory: r.results.byCategory, ...(r.results.unparsed !== undefined ? { unparsed: r.results.unparsed } : {}) },
  };
  const files = { results: join(dir, `${dateId}_results.json`), samples: join(dir, `${dateId}_samples_${task}.jsonl`) };
  await writeJsonl(files.samples, samples);
  await writeJsonFile(files.results, results);
  return files;
}
