import assert from 'node:assert/strict';

import { BASE_CURRICULUM, CURRICULA, SEEING_CURRICULUM, stageTrainConfig } from '../../lib/demo/base.js';
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

  it("a stage's learning rate reaches its training config (1e-3 unless it says)", () => {
    const stage = BASE_CURRICULUM[0]!;
    assert.equal(stageTrainConfig(stage, 'm', 'd.jsonl', 'o', 1).lr, 1e-3);
    assert.equal(stageTrainConfig({ ...stage, lr: 3e-4 }, 'm', 'd.jsonl', 'o', 1).lr, 3e-4);
  });
});
