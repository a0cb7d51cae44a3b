// `tpo eval` with sampling 'processor' on the synthetic world's tiny Qwen2.5-VL: every video sampled as its
// processor samples it (ModelSession.processorSamplePlan, 2 fps within [min_frames, max_frames]), the results say so
// (sampling, each sample's frames), the flags parse and refuse what does not go together, and a model whose
// processor has no rule fails before any video is read.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { evalConfigFromArgs } from '../../lib/cli/eval.js';
import { evaluate, type EvalResults, formatResults } from '../../lib/eval/evaluate.js';
import { readEvalBenchmark } from '../../lib/eval/formats.js';
import { ModelSession } from '../../lib/model/session.js';
import { probeVideo } from '../../lib/video/decode.js';
import { loadQwen25VLProcessorConfig, qwen25vlFrameIndices } from '../../lib/video/qwen2-5-vl.js';
import { removeDir, tempDir } from '../helpers.js';
import { writeWorld } from '../tpo/pipeline.js';
import { makeWorld } from '../world-fixture.js';

describe("evaluation with the model's own processor sampling", function () {
  this.timeout(600_000);
  let dir: string;
  let model: string;
  let benchmark: string;
  before(async () => {
    dir = tempDir('tpo-eval-processor-');
    model = await writeWorld(join(dir, 'qwen'), 'qwen2.5-vl');
    benchmark = join(dir, 'qwen', 'test-benchmark.jsonl');
  });
  after(() => removeDir(dir));

  it("Qwen2.5-VL at 2 fps: n questions answered, each video's frames its processor's, the results say processor", async () => {
    const out = join(dir, 'runs', 'processor.json');
    const r = await evaluate({ model, benchmark, sampling: 'processor', samplingFps: 2, limit: 6, out });
    assert.equal(r.results.n, 6);
    assert.equal(r.config.sampling, 'processor');
    assert.equal(r.sampling.kind, 'processor');
    assert.match(r.sampling.kind === 'processor' ? r.sampling.rule : '', /^Qwen2VLVideoProcessor\.sample_frames .*: fps 2, frames within \[4, 768\]$/);
    const processor = await loadQwen25VLProcessorConfig(model);
    const items = (await readEvalBenchmark(benchmark)).items.slice(0, 6);
    for (const [i, sample] of r.samples.entries()) {
      const info = await probeVideo(items[i]!.videoPath, { countFrames: true });
      assert.deepEqual(sample.frames, qwen25vlFrameIndices(info.frameCount, info.fps, { ...processor, fps: 2 }), sample.id);
    }
    const written = JSON.parse(readFileSync(out, 'utf8')) as EvalResults;
    assert.deepEqual(written.sampling, r.sampling);
    assert.deepEqual(written.samples.map((s) => s.frames), r.samples.map((s) => s.frames));
    assert.match(formatResults(r).split('\n')[0]!, /6 questions, loglik, frames by Qwen2VLVideoProcessor\.sample_frames/);

    // lmms-eval's layout: no max_frames_num, the rule instead
    const folder = join(dir, 'runs', 'lmms-eval');
    await evaluate({ model, benchmark, sampling: 'processor', samplingFps: 2, limit: 6, out: folder });
    const [modelFolder] = readdirSync(folder);
    const resultsFile = readdirSync(join(folder, modelFolder!)).find((f) => f.endsWith('_results.json'))!;
    const lmms = JSON.parse(readFileSync(join(folder, modelFolder!, resultsFile), 'utf8'));
    assert.doesNotMatch(lmms.config.model_args, /max_frames_num/);
    assert.deepEqual(Object.values(lmms.configs)[0], { ...(Object.values(lmms.configs)[0] as object), lmms_eval_specific_kwargs: { default: { frame_sampling: r.sampling.kind === 'processor' ? r.sampling.rule : '' } } });

    // The frames are what the model saw: uniform sampling of as many frames scores otherwise, and says uniform.
    const frames = r.samples[0]!.frames!;
    const uniform = await evaluate({ model, benchmark, frames: frames.length, limit: 6 });
    assert.deepEqual(uniform.sampling, { kind: 'uniform', frames: frames.length });
    assert.equal(uniform.samples[0]!.frames, undefined);
    assert.notDeepEqual(uniform.samples[0]!.scores, r.samples[0]!.scores);
  });

  it('flags: --sampling processor --sampling-fps / --sampling-frames; the settings without it, both, or with --frames are refused', () => {
    const base = ['--model', model, '--benchmark', benchmark];
    const { config } = evalConfigFromArgs([...base, '--sampling', 'processor', '--sampling-fps', '2']);
    assert.deepEqual([config.sampling, config.samplingFps, config.samplingFrames], ['processor', 2, undefined]);
    assert.equal(evalConfigFromArgs(base).config.sampling, 'uniform');
    assert.equal(evalConfigFromArgs([...base, '--sampling', 'processor', '--sampling-frames', '8']).config.samplingFrames, 8);
    assert.throws(() => evalConfigFromArgs([...base, '--sampling-fps', '2']), /--sampling-fps.*needs sampling 'processor'/);
    assert.throws(() => evalConfigFromArgs([...base, '--sampling', 'processor', '--sampling-fps', '2', '--sampling-frames', '8']), /not both/);
    assert.throws(() => evalConfigFromArgs([...base, '--sampling', 'processor', '--frames', '8']), /--frames.*samplingFrames/);
    assert.throws(() => evalConfigFromArgs([...base, '--sampling', 'every']), /--sampling/);
  });

  it("a model whose processor has no rule (LLaVA-Video): refused before any video is read, naming it and pointing to frames", async () => {
    const world = await makeWorld(join(dir, 'llava'), 2);
    await assert.rejects(evaluate({ model: world.model, benchmark: world.benchmark, sampling: 'processor', samplingFps: 2 }), (e: Error) =>
      e.message.includes(world.model) && e.message.includes('LlavaQwenForCausalLM') && /sample frames uniformly/.test(e.message));
    // (the same session answers uniformly)
    using session = await ModelSession.open(world.model);
    assert.throws(() => session.processorSampling(), /no frame-sampling rule/);
  });
});
