// `tpo generate` with sampling 'processor': the none manipulation's two answers from the frames the model's own
// processor samples (the world's tiny VideoLLaMA3 at 1 fps), recorded in each pair's provenance; TPO's and
// TimeWarp's manipulations, defined on uniform frames, refuse it; a model without a rule fails before any video.
import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';

import { ModelSession } from '../../lib/model/session.js';
import { generatePairs } from '../../lib/tpo/generate.js';
import { removeDir, tempDir } from '../helpers.js';
import { makeWorld } from '../world-fixture.js';
import { lines, writeWorld } from './pipeline.js';

describe("TPO pair generation with the model's own processor sampling", function () {
  this.timeout(600_000);
  let dir: string;
  let model: string;
  let questions: string;
  before(async () => {
    dir = tempDir('tpo-generate-processor-');
    model = await writeWorld(join(dir, 'world'), 'video-llama3');
    questions = join(dir, 'world', 'train-benchmark.jsonl');
  });
  after(() => removeDir(dir));

  it("none: both answers from the processor's frames of each video, as processorSamplePlan picks them", async () => {
    const out = join(dir, 'none', 'pairs.jsonl');
    const base = { model, questions, out, manipulation: 'none', judge: 'none', temperature: 1, seed: 3, maxNewTokens: 4 } as const;
    await generatePairs({ ...base, sampling: 'processor', samplingFps: 1, targetPairs: 4 });
    const records = lines(out);
    assert.equal(records.length, 4);
    using session = await ModelSession.open(model);
    for (const r of records) {
      const { indices } = await session.processorSamplePlan(resolve(dirname(out), r.video), { fps: 1 });
      assert.deepEqual(r.frames, { preferred: indices, dispreferred: indices }, r.id);
      // (1 fps of the world's 8 fps videos, not the model's 16 uniform frames)
      assert.ok(indices.length >= 4 && indices.length < 16 && indices[1] === 8, `${indices}`);
    }
  });

  it("TPO's and TimeWarp's manipulations refuse it, saying why; the settings need it; a model without a rule is refused", async () => {
    const base = { model, questions, judge: 'none', temperature: 1 } as const;
    for (const manipulation of ['tpo', 'timewarp-implicit'] as const) {
      await assert.rejects(generatePairs({ ...base, out: join(dir, `x-${manipulation}.jsonl`), manipulation, sampling: 'processor', samplingFps: 1 }),
        (e: Error) => e.message.includes('sampling') && e.message.includes('none manipulation only') && e.message.includes(manipulation));
    }
    await assert.rejects(generatePairs({ ...base, out: join(dir, 'x.jsonl'), manipulation: 'none', samplingFps: 1 }), /needs sampling 'processor'/);
    const world = await makeWorld(join(dir, 'llava'), 2);
    await assert.rejects(generatePairs({ model: world.model, questions: world.benchmark, out: join(dir, 'llava-pairs.jsonl'), judge: 'none',
      temperature: 1, manipulation: 'none', sampling: 'processor', samplingFps: 1 }), (e: Error) =>
      e.message.includes(world.model) && e.message.includes('LlavaQwenForCausalLM') && /sample frames uniformly/.test(e.message));
  });
});
