// lmms-eval's output layout (lib/eval/lmms-eval.ts) and Video-MME's other video extensions (lib/eval/formats.ts).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { EvalResults, EvalSample } from '../../lib/eval/evaluate.js';
import { readEvalBenchmark } from '../../lib/eval/formats.js';
import { isLmmsEvalOut, writeLmmsEval } from '../../lib/eval/lmms-eval.js';
import { evalConfigFromArgs } from '../../lib/cli/eval.js';
import { removeDir, tempDir } from '../helpers.js';

function results(format: EvalResults['config']['format'], samples: EvalSample[], method: 'loglik' | 'generate' = 'generate'): EvalResults {
  const accuracy = samples.filter((s) => s.correct).length / samples.length;
  return {
    config: { model: 'runs/tpo/final', benchmark: 'bench/videomme.json', format, frames: 32, method, maxNewTokens: 16 } as EvalResults['config'],
    results: { accuracy, n: samples.length, skipped: 0, ...(method === 'generate' ? { unparsed: 0 } : { acc_norm: 0.5 }), byCategory: {} },
    samples, skipped: [], sampling: { kind: 'uniform', frames: 32 }, seconds: 12.5, model: { path: 'runs/tpo/final', adapter: null, architecture: 'LlavaQwenForCausalLM', modelType: 'llava_qwen', parameters: 1 },
    tpoVersion: '0.1.0', date: '2026-03-04T05:06:07.890Z',
  };
}

const sample = (id: string, answer: string, prediction: string, category: Record<string, string>): EvalSample => ({
  id, video: `${id}.mp4`, category, answer, prediction, correct: answer === prediction, response: `The best answer is ${prediction}.`, parsed: 'letter',
});

describe("lmms-eval's layout", () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  it('Video-MME: <model>/<date>_results.json and <date>_samples_videomme.jsonl, with lmms-eval\'s keys and metric', async () => {
    const cat = { duration: 'short', domain: 'Knowledge', task_type: 'Counting Problem' };
    const r = results('videomme', [sample('001-1', 'A', 'A', cat), sample('001-2', 'C', 'B', cat), sample('002-1', 'D', 'D', cat), sample('002-2', 'B', 'B', cat)]);
    const files = await writeLmmsEval(r, dir);
    assert.deepEqual(readdirSync(dir), ['runs__tpo__final']);
    assert.deepEqual(files, {
      results: join(dir, 'runs__tpo__final', '20260304_050607_results.json'),
      samples: join(dir, 'runs__tpo__final', '20260304_050607_samples_videomme.jsonl'),
    });
    const out = JSON.parse(readFileSync(files.results, 'utf8')) as Record<string, any>;
    for (const key of ['results', 'configs', 'versions', 'n-shot', 'higher_is_better', 'n-samples', 'config', 'date', 'task_hashes', 'model_name', 'model_name_sanitized', 'total_evaluation_time_seconds']) {
      assert.ok(key in out, key);
    }
    assert.equal(out.results.videomme['videomme_percetion_score,none'], 75);  // percent, as lmms-eval reports it
    assert.equal(out.results.videomme['acc,none'], 0.75);
    assert.ok(Math.abs(out.results.videomme['acc_stderr,none'] - 0.25) < 1e-12);  // sqrt(0.25 / 4): sample sd / sqrt(n)
    assert.deepEqual(out['n-samples'], { videomme: { original: 4, effective: 4 } });
    assert.equal(out.configs.videomme.output_type, 'generate_until');
    assert.equal(out.configs.videomme.generation_kwargs.max_new_tokens, 16);
    assert.equal(out.config.model_args, 'pretrained=runs/tpo/final,max_frames_num=32');
    const lines = readFileSync(files.samples, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    assert.equal(lines.length, 4);
    assert.deepEqual(lines[1]!.videomme_percetion_score, {
      question_id: '001-2', duration: 'short', category: 'Knowledge', task_category: 'Counting Problem', pred_answer: 'B', answer: 'C',
    });
    assert.deepEqual([lines[1]!.doc_id, lines[1]!.target, lines[1]!.filtered_resps], [1, 'C', ['B']]);
    assert.match(lines[0]!.doc_hash, /^[0-9a-f]{64}$/);
  });

  it('loglik tasks report acc and acc_norm; tpo and LongVideoBench use their task names', async () => {
    const s = { ...sample('q1', 'A', 'A', { kind: 'localized' }), scores: [-1, -2], answerTokens: [2, 3], correctNorm: false, predictionNorm: 'B' };
    const files = await writeLmmsEval(results('tpo', [s], 'loglik'), dir);
    const out = JSON.parse(readFileSync(files.results, 'utf8')) as Record<string, any>;
    assert.deepEqual(Object.keys(out.results), ['tpo_mc']);
    assert.equal(out.results.tpo_mc['acc,none'], 1);
    assert.equal(out.results.tpo_mc['acc_norm,none'], 0.5);
    assert.equal(out.configs.tpo_mc.output_type, 'multiple_choice');
    const line = JSON.parse(readFileSync(files.samples, 'utf8')) as Record<string, any>;
    assert.deepEqual(line.filtered_resps, [[-1, false], [-2, false]]);
    const lvb = await writeLmmsEval(results('longvideobench', [sample('l1', 'B', 'B', { duration_group: '600', question_category: 'TOS' })]), join(dir, 'lvb'));
    assert.match(lvb.samples, /_samples_longvideobench_val_v\.jsonl$/);
    assert.equal((JSON.parse(readFileSync(lvb.results, 'utf8')) as Record<string, any>).results.longvideobench_val_v['lvb_acc,none'], 1);
  });

  it('--out FILE.json keeps tpo\'s JSON, a folder takes lmms-eval\'s layout; --max-frames-num is --frames', () => {
    assert.equal(isLmmsEvalOut('results.json'), false);
    assert.equal(isLmmsEvalOut('logs/'), true);
    assert.equal(isLmmsEvalOut('logs'), true);
    const { config } = evalConfigFromArgs(['--model', 'm', '--benchmark', 'b.json', '--max-frames-num', '32']);
    assert.equal(config.frames, 32);
  });
});

describe("Video-MME's video extensions", () => {
  it('<videoID>.mp4, else .MP4, else .mkv, as lmms-eval looks', async () => {
    const dir = tempDir();
    try {
      const row = (videoID: string, q: string) => ({
        video_id: '001', duration: 'short', domain: 'Knowledge', sub_category: 'x', videoID, question_id: q, task_type: 'Counting Problem',
        question: 'How many?', options: ['A. 1', 'B. 2', 'C. 3', 'D. 4'], answer: 'B',
      });
      writeFileSync(join(dir, 'bench.json'), JSON.stringify([row('mp4', '1'), row('upper', '2'), row('mkv', '3'), row('none', '4')]));
      for (const f of ['mp4.mp4', 'upper.MP4', 'mkv.mkv']) writeFileSync(join(dir, f), '');
      const { items } = await readEvalBenchmark(join(dir, 'bench.json'));
      assert.deepEqual(items.map((i) => i.video), ['mp4.mp4', 'upper.MP4', 'mkv.mkv', 'none.mp4']);
      assert.deepEqual(items.map((i) => i.videoPath), ['mp4.mp4', 'upper.MP4', 'mkv.mkv', 'none.mp4'].map((f) => join(dir, f)));
    } finally {
      removeDir(dir);
    }
  });
});
