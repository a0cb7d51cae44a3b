// lib/eval/evaluate.ts and `tpo eval` on the synthetic world's tiny random model: the figures follow from the
// samples, the samples from the model, missing videos and bad flags are reported before anything runs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { MissingVideosError } from '../../lib/data/errors.js';
import { encodeSft } from '../../lib/data/encode.js';
import { evaluate, type EvalResults, type EvalSample, formatResults } from '../../lib/eval/evaluate.js';
import { readEvalBenchmark } from '../../lib/eval/formats.js';
import { parseChoice } from '../../lib/eval/score.js';
import { readSafetensors, writeSafetensors } from '../../lib/model/safetensors.js';
import { Tokenizer } from '../../lib/model/tokenizer.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { tensor } from '../../lib/tensor.js';
import { decodeVideo } from '../../lib/video/decode.js';
import { loadPreprocessorConfig, preprocessFrames } from '../../lib/video/preprocess.js';
import { removeDir, ROOT, tempDir } from '../helpers.js';
import { makeWorld } from '../world-fixture.js';

const TPO = join(ROOT, 'dist', 'lib', 'cli', 'main.js');
const LETTERS = 'ABCDE';
const mean = (flags: boolean[]) => flags.filter(Boolean).length / flags.length;
const firstMax = (xs: number[]) => xs.indexOf(Math.max(...xs));

/** Every category's n adds up to the total, and its accuracy is that of its samples. */
function checkCategories(r: EvalResults, correct: (s: EvalSample) => boolean): void {
  const names = new Set(r.samples.flatMap((s) => Object.keys(s.category)));
  assert.ok(names.size > 0);
  for (const name of names) {
    const keys = Object.keys(r.results.byCategory).filter((k) => k.startsWith(`${name}=`));
    assert.equal(keys.reduce((n, k) => n + r.results.byCategory[k]!.n, 0), r.results.n, `${name}: n adds up`);
    for (const key of keys) {
      const members = r.samples.filter((s) => `${name}=${s.category[name]}` === key);
      assert.equal(r.results.byCategory[key]!.accuracy, mean(members.map(correct)), key);
    }
  }
}

describe('evaluation', function () {
  this.timeout(300_000);
  let dir: string;
  let world: { model: string; benchmark: string };
  before(async () => {
    dir = tempDir('tpo-eval-');
    world = await makeWorld(join(dir, 'world'), 3);
  });
  after(() => removeDir(dir));

  it('loglik: predictions are the argmax of the option scores, accuracy and categories follow, results re-read', async () => {
    const out = join(dir, 'runs', 'loglik.json');
    const progress: [number, number][] = [];
    const r = await evaluate({ model: world.model, benchmark: world.benchmark, frames: 4, limit: 14, out }, (d, t) => progress.push([d, t]));
    const items = (await readEvalBenchmark(world.benchmark)).items.slice(0, 14);
    assert.equal(r.results.n, 14);
    assert.deepEqual(r.samples.map((s) => [s.id, s.answer]), items.map((i) => [i.id, i.answerLetter]));
    assert.deepEqual(progress.at(-1), [14, 14]);
    // Once when the model is loaded, then once per video (its questions are scored in one native call).
    assert.equal(progress[0]![0], 0);
    assert.ok(progress.every(([d], i) => i === 0 || d > progress[i - 1]![0]), `progress rises: ${progress.map(([d]) => d)}`);
    assert.equal(progress.length, 1 + new Set(items.map((i) => i.video)).size);

    for (const [i, s] of r.samples.entries()) {
      assert.equal(s.scores!.length, items[i]!.options.length);
      assert.ok(s.scores!.every((x) => Number.isFinite(x) && x < 0), `${s.id}: ${s.scores}`);
      assert.equal(s.prediction, LETTERS[firstMax(s.scores!)]);
      assert.equal(s.correct, s.prediction === s.answer);
      assert.equal(s.predictionNorm, LETTERS[firstMax(s.scores!.map((x, j) => x / s.answerTokens![j]!))]);
      assert.equal(s.correctNorm, s.predictionNorm === s.answer);
    }
    assert.equal(r.results.accuracy, mean(r.samples.map((s) => s.prediction === s.answer)));
    assert.equal(r.results.acc_norm, mean(r.samples.map((s) => s.predictionNorm === s.answer)));
    assert.equal(r.results.unparsed, undefined);
    checkCategories(r, (s) => s.correct);
    assert.ok(Object.keys(r.results.byCategory).includes('kind=localized'));
    assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), JSON.parse(JSON.stringify(r)));
    assert.equal(r.config.format, 'tpo');
    assert.equal(r.model.architecture, 'LlavaQwenForCausalLM');

    const table = formatResults(r);
    assert.match(table, new RegExp(`^overall +${(100 * r.results.accuracy).toFixed(1)} % +${(100 * r.results.acc_norm!).toFixed(1)} % +14$`, 'm'));
    assert.match(table, /^kind=localized +\d+\.\d % +\d+\.\d % +\d+$/m);
  });

  it('loglik: a score is the log-likelihood of the option closing the turn after the open question and the video', async () => {
    const r = await evaluate({ model: world.model, benchmark: world.benchmark, frames: 4, limit: 1 });
    const [item] = (await readEvalBenchmark(world.benchmark)).items;
    // Independently: the full sequence per option (no shared prefix), the frames given as pixels.
    const tokenizer = await Tokenizer.load(world.model);
    using model = await VideoLM.load(world.model);
    const decoded = await decodeVideo(item!.videoPath, { kind: 'uniform', frames: 4 });
    using pixels = await preprocessFrames(decoded.frames, await loadPreprocessorConfig(world.model));
    decoded.frames.dispose();
    const encoded = item!.options.map((answer) => encodeSft(tokenizer, { prompt: `<image>\n${item!.question}`, answer }));
    const ids = (a: Int32Array) => tensor(a.slice(), [a.length]);
    const { sums } = await model.logprobs({
      prompt: ids(encoded[0]!.inputIds.subarray(0, encoded[0]!.promptLength)),
      answers: encoded.map((e) => ids(e.inputIds.subarray(e.promptLength))),
      pixelValues: pixels, sharePrefix: false,
    });
    const expected = Array.from(sums.toTypedArray());
    r.samples[0]!.scores!.forEach((x, i) => assert.ok(Math.abs(x - expected[i]!) < 1e-3, `option ${i}: ${x} vs ${expected[i]}`));
  });

  it('loads a LoRA adapter: a fresh one (B = 0) leaves every score as it was; a missing one is an error', async () => {
    using model = await VideoLM.load(world.model);
    model.addLora({ r: 4, alpha: 8 });
    const adapter = join(dir, 'adapter');
    await model.saveLora(adapter);
    const base = await evaluate({ model: world.model, benchmark: world.benchmark, frames: 4, limit: 4 });
    const adapted = await evaluate({ model: world.model, adapter, benchmark: world.benchmark, frames: 4, limit: 4 });
    assert.equal(adapted.model.adapter, adapter);
    assert.deepEqual(adapted.samples.map((s) => s.scores), base.samples.map((s) => s.scores));
    await assert.rejects(evaluate({ model: world.model, adapter: join(dir, 'none'), benchmark: world.benchmark, limit: 1 }), /adapter_config\.json/);
  });

  it('generate: greedy answers, the letter read from each, unparsed ones counted and wrong', async () => {
    const r = await evaluate({ model: world.model, benchmark: world.benchmark, frames: 4, limit: 12, method: 'generate', maxNewTokens: 4 });
    const items = (await readEvalBenchmark(world.benchmark)).items.slice(0, 12);
    assert.equal(r.results.n, 12);
    assert.equal(r.results.acc_norm, undefined);
    assert.equal(r.results.unparsed, r.samples.filter((s) => s.prediction === null).length);
    for (const [i, s] of r.samples.entries()) {
      assert.equal(typeof s.response, 'string');
      const parsed = parseChoice(s.response!, items[i]!.options);
      assert.equal(s.parsed, parsed.how);
      assert.equal(s.prediction, parsed.index === null ? null : LETTERS[parsed.index]);
      assert.equal(s.correct, s.prediction === s.answer);
      assert.equal(s.scores, undefined);
    }
    assert.equal(r.results.accuracy, mean(r.samples.map((s) => s.correct)));
    checkCategories(r, (s) => s.correct);
    assert.match(formatResults(r), new RegExp(`${r.results.unparsed} answers named no option`));
  });

  it('evaluates a Video-MME file on the same videos', async () => {
    const [first, second] = (await readEvalBenchmark(world.benchmark)).items;
    const asVideoMme = [first!, second!].map((item, i) => ({
      video_id: String(i), duration: 'short', domain: 'Synthetic', sub_category: 'Shapes', videoID: item.video.replace(/^videos\/|\.mp4$/g, ''),
      question_id: `q${i}`, task_type: String(item.meta['type']), question: item.question,
      options: item.options.map((o, j) => `${LETTERS[j]}. ${o}`), answer: item.answerLetter,
    }));
    const file = join(dir, 'videomme.json');
    writeFileSync(file, JSON.stringify(asVideoMme));
    const r = await evaluate({ model: world.model, benchmark: file, videoRoot: join(dir, 'world', 'videos'), frames: 4 });
    assert.equal(r.config.format, 'videomme');
    assert.deepEqual(r.samples.map((s) => s.id), ['q0', 'q1']);
    assert.deepEqual(Object.keys(r.results.byCategory).filter((k) => k.startsWith('duration=')), ['duration=short']);
  });

  it('reports every missing video before loading the model', async () => {
    const file = join(dir, 'missing.jsonl');
    const record = (id: string, video: string) => JSON.stringify({ id, video, question: 'Q?', options: ['a', 'b'], answer: 'A' });
    writeFileSync(file, [record('1', 'gone1.mp4'), record('2', 'gone2.mp4'), record('3', 'gone1.mp4')].join('\n'));
    // The model folder does not exist either: the videos are checked first.
    await assert.rejects(evaluate({ model: join(dir, 'no-model'), benchmark: file }), (e: unknown) => {
      assert.ok(e instanceof MissingVideosError);
      assert.deepEqual(e.missing.map((m) => [m.video, m.records]), [['gone1.mp4', 2], ['gone2.mp4', 1]]);
      return true;
    });
  });

  it('`tpo eval`: a table and a progress line, JSON with --json, and bad flags named before anything runs', () => {
    const env = { ...process.env };
    const run = (...args: string[]) => spawnSync(process.execPath, [TPO, 'eval', ...args], { encoding: 'utf8', env, timeout: 120_000 });
    const base = ['--model', world.model, '--benchmark', world.benchmark, '--frames', '4', '--limit', '3'];

    const table = run(...base);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /^overall +\d+\.\d % +\d+\.\d % +3$/m);
    assert.match(table.stderr, /^eval 3\/3 questions in /m);

    const json = run(...base, '--json', '--method', 'generate', '--out', join(dir, 'cli.json'));
    assert.equal(json.status, 0, json.stderr);
    const summary = JSON.parse(json.stdout);
    assert.equal(summary.results.n, 3);
    assert.equal(summary.samples, undefined);
    assert.equal(JSON.parse(readFileSync(join(dir, 'cli.json'), 'utf8')).samples.length, 3);

    const bad = run('--benchmark', world.benchmark, '--frames', 'four', '--method', 'vote');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^tpo eval: --model: required; --frames: .*number.*; --method: .*"loglik"\|"generate"/m);
    const unknown = run(...base, '--bogus');
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /Unknown option '--bogus'/);
  });
});

describe('evaluation under bad input', function () {
  this.timeout(300_000);
  let dir: string;
  let world: { model: string; benchmark: string };
  before(async () => {
    dir = tempDir('tpo-eval-bad-');
    world = await makeWorld(join(dir, 'world'), 3);
  });
  after(() => removeDir(dir));

  it('non-finite scores (weights that overflow) are an error naming the model, for both methods; NaN weights do not load', async () => {
    const { tensors } = await readSafetensors(join(world.model, 'model.safetensors'));
    const name = Object.keys(tensors).find((k) => k.endsWith('norm.weight') && !k.includes('vision'))!;
    const t = tensors[name]!;
    const poisonedWith = async (folder: string, value: number) => {
      mkdirSync(folder);
      await writeSafetensors(join(folder, 'model.safetensors'), { ...tensors, [name]: tensor(new Float32Array(t.numel).fill(value), t.shape) });
      for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json']) copyFileSync(join(world.model, f), join(folder, f));
    };
    // NaN weights are refused as the model loads, naming the tensor.
    const nanWeights = join(dir, 'nan-weights');
    await poisonedWith(nanWeights, Number.NaN);
    await assert.rejects(evaluate({ model: nanWeights, benchmark: world.benchmark, frames: 4, limit: 3 }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_TPO_NON_FINITE');
      assert.ok(e.message.includes(`${join(nanWeights, 'model.safetensors')}: tensor '${name}' holds NaN or infinite values`), e.message);
      return true;
    });
    // Finite weights whose products overflow float32 load, and give scores that are not numbers.
    const nan = join(dir, 'nan-model');
    await poisonedWith(nan, 3e38);
    for (const method of ['loglik', 'generate'] as const) {
      await assert.rejects(evaluate({ model: nan, benchmark: world.benchmark, frames: 4, limit: 3, method }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'ERR_TPO_NON_FINITE');
        assert.ok(e.message.startsWith(`${nan}: `), e.message);
        assert.match(e.message, /is not finite: the model's weights or config/);
        return true;
      });
    }
  });

  it('a video that cannot be decoded skips its questions, listed with the reason; onVideoError stop fails', async () => {
    const items = readFileSync(world.benchmark, 'utf8').trim().split('\n').slice(0, 6).map((l) => JSON.parse(l));
    writeFileSync(join(dir, 'world', 'videos', 'broken.mp4'), Buffer.alloc(2048, 1));
    const file = join(dir, 'world', 'with-broken.jsonl');
    writeFileSync(file, items.map((r, i) => JSON.stringify(i < 2 ? { ...r, video: 'videos/broken.mp4' } : r)).join('\n') + '\n');
    const r = await evaluate({ model: world.model, benchmark: file, frames: 4 });
    assert.equal(r.results.n, 4);
    assert.equal(r.results.skipped, 2);
    assert.deepEqual(r.skipped.map((s) => s.id), items.slice(0, 2).map((i) => String(i.id)));
    for (const s of r.skipped) assert.match(s.reason, /broken\.mp4: .*cannot open as a video/);
    assert.match(formatResults(r), /4 questions, .*2 skipped \(their videos could not be decoded/);
    await assert.rejects(evaluate({ model: world.model, benchmark: file, frames: 4, onVideoError: 'stop' }), { code: 'ERR_TPO_VIDEO' } as never);
  });

  it('an --out that is a folder (or under /proc) fails before the model loads', async () => {
    // The model folder does not exist: the output is checked first. An --out ending in .json is a results file (any
    // other is lmms-eval's output folder), so a folder named results.json is the file that cannot be written.
    const folder = join(dir, 'results.json');
    mkdirSync(folder, { recursive: true });
    await assert.rejects(evaluate({ model: join(dir, 'no-model'), benchmark: world.benchmark, out: folder }), /is a folder, not a file \(the results file \(--out\)\)/);
    await assert.rejects(evaluate({ model: join(dir, 'no-model'), benchmark: world.benchmark, out: '/proc/self/results.json' }), /is on procfs/);
    const cli = spawnSync(process.execPath, [TPO, 'eval', '--model', world.model, '--benchmark', world.benchmark, '--out', folder], { encoding: 'utf8' });
    assert.equal(cli.status, 1);
    assert.match(cli.stderr, /is a folder, not a file/);
  });
});
