import assert from 'node:assert/strict';

import { BASE_CURRICULUM, BINDING_CURRICULUM, CURRICULA, SEEING_CURRICULUM, stageTrainConfig, trainBase } from '../../lib/demo/base.js';
import { COMPREHENSIVE_TYPES, LOCALIZED_TYPES } from '../../lib/synthetic/questions.js';
import { LengthSpec } from '../../lib/synthetic/world.js';

describe('demo/base: the SFT curricula', () => {
  const types: readonly string[] = [...LOCALIZED_TYPES, ...COMPREHENSIVE_TYPES];

  for (const [name, curriculum] of Object.entries(CURRICULA)) {
    it(`${name}: every stage is a valid world with known question types and a unique name`, () => {
      assert.equal(new Set(curriculum.map((s) => s.name)).size, curriculum.length);
      for (const stage of curriculum) {
        assert.ok(LengthSpec.safeParse(stage.spec).success, `${stage.name}: spec`);
        for (const t of stage.skipTypes ?? []) assert.ok(types.includes(t), `${stage.name}: unknown type ${t}`);
        if (stage.again) assert.ok(curriculum.slice(0, curriculum.indexOf(stage)).some((s) => s.name === stage.again), `${stage.name}: again`);
      }
    });
  }

  it('the seeing curriculum asks shape alone first, one frame only what one frame shows, and ends on videos with counts above 5', () => {
    const [shapes, frames] = [SEEING_CURRICULUM[0]!, SEEING_CURRICULUM[1]!];
    assert.equal(shapes.frames, 1);
    assert.deepEqual(types.filter((t) => !shapes.skipTypes?.includes(t)), ['shape']);
    assert.equal(frames.frames, 1);
    for (const t of ['motion', 'first', 'last', 'count', 'count-color']) assert.ok(frames.skipTypes?.includes(t), t);
    assert.ok(SEEING_CURRICULUM.at(-1)!.spec.events[1] > 5);
    assert.equal(CURRICULA.base, BASE_CURRICULUM);
  });

  it('the binding curriculum is seeing with its clips again and two-event shape questions before the multi-event videos', () => {
    const names = BINDING_CURRICULUM.map((s) => s.name);
    assert.deepEqual(names, ['shapes', 'frames', 'clips', 'clips-again', 'pairs', 'short', 'long']);
    const pairs = BINDING_CURRICULUM[names.indexOf('pairs')]!;
    assert.deepEqual(pairs.spec.events, [2, 2]);
    assert.deepEqual(types.filter((t) => !pairs.skipTypes?.includes(t)), ['shape']);
    // make-base's seed 1 + the stage's index: the world continued 9's shape stage was trained on
    assert.equal(1 + names.indexOf('pairs'), 5);
    assert.equal(BINDING_CURRICULUM[names.indexOf('clips-again')]!.again, 'clips');
    assert.equal(BINDING_CURRICULUM.at(-1), SEEING_CURRICULUM.at(-1));
  });

  it('trainBase refuses a stage that trains again on a stage that does not come before it, before it trains anything', async () => {
    const stage = BASE_CURRICULUM[0]!;
    await assert.rejects(trainBase('/nonexistent/base', 1, undefined, [{ ...stage, name: 'a', again: 'b' }, { ...stage, name: 'b' }]),
      /stage 'a' trains again on 'b', which is not an earlier stage/);
  });

  it("a stage's learning rate reaches its training config (1e-3 unless it says)", () => {
    const stage = BASE_CURRICULUM[0]!;
    assert.equal(stageTrainConfig(stage, 'm', 'd.jsonl', 'o', 1).lr, 1e-3);
    assert.equal(stageTrainConfig({ ...stage, lr: 3e-4 }, 'm', 'd.jsonl', 'o', 1).lr, 3e-4);
  });
});
