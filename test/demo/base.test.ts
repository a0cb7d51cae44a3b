import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { allTypesBut, BASE_CURRICULUM, BINDING_CURRICULUM, CURRICULA, type CurriculumStage, SEEING_CURRICULUM, stageTrainConfig, stageWorld, trainBase } from '../../lib/demo/base.js';
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
    assert.deepEqual(names, ['shapes', 'frames', 'clips', 'clips-again', 'pairs', 'pairs-all', 'short', 'long']);
    const pairs = BINDING_CURRICULUM[names.indexOf('pairs')]!;
    assert.deepEqual(pairs.spec.events, [2, 2]);
    assert.deepEqual(types.filter((t) => !pairs.skipTypes?.includes(t)), ['shape']);
    // make-base's seed 1 + the stage's index: the world continued 9's shape stage was trained on
    assert.equal(1 + names.indexOf('pairs'), 5);
    const again = BINDING_CURRICULUM[names.indexOf('clips-again')]!;
    assert.equal(again.again, 'clips');
    assert.equal(again.frames, 16); // continued 6's P1: at the frames the gate and the experiment ask at
    const all = BINDING_CURRICULUM[names.indexOf('pairs-all')]!;
    assert.equal(all.again, 'pairs');
    assert.equal(all.skipTypes, undefined);
    // no stage trains on the binding probe's held-out world (seed 7 = make-base's 1 + 6)
    const worlds = BINDING_CURRICULUM.map((_, i) => stageWorld(BINDING_CURRICULUM, i));
    const seeds = worlds.map((w) => 1 + w.seedOffset);
    assert.ok(!seeds.includes(7), `world seeds ${seeds.join(', ')}`);
    // and no two worlds share a seed (they would share their first events)
    const own = worlds.filter((w, i) => w.stage === BINDING_CURRICULUM[i]);
    assert.equal(new Set(own.map((w) => w.seedOffset)).size, own.length);
    assert.equal(worlds[names.indexOf('pairs-all')]!.stage.name, 'pairs');
  });

  it('trainBase refuses a stage that trains again on a stage that does not come before it, before it trains anything', async () => {
    const stage = BASE_CURRICULUM[0]!;
    await assert.rejects(trainBase('/nonexistent/base', 1, undefined, [{ ...stage, name: 'a', again: 'b' }, { ...stage, name: 'b' }]),
      /stage 'a' trains again on 'b', which is not an earlier stage/);
  });

  it('trainBase stops after --through and a later run goes on --after it from the kept model, with the same worlds', async function () {
    this.timeout(120_000);
    const dir = await mkdtemp(join(tmpdir(), 'tpo-base-'));
    try {
      const tiny = (name: string): CurriculumStage => ({ name, videos: 6, spec: { events: [1, 1], eventFrames: [6, 8], gapFrames: [0, 0] },
        skipTypes: ['count', 'count-color'], frames: 1, batchSize: 4, steps: 2 });
      const curriculum = [tiny('a'), { ...tiny('a-again'), again: 'a', skipTypes: allTypesBut('color') }, { ...tiny('b'), worldSeed: 0 }];
      const kept = await trainBase(join(dir, 'one'), 3, undefined, curriculum, { through: 'a-again' });
      assert.equal(kept, join(dir, 'one', 'sft-a-again', 'final'));
      assert.ok(!existsSync(join(dir, 'one', 'sft-b')), 'nothing after --through is trained');
      assert.ok(!existsSync(join(dir, 'one', 'world-a-again')), "a stage trained again has no world of its own");
      const again = (await readFile(join(dir, 'one', 'world-a', 'train-open-a-again.jsonl'), 'utf8')).split('\n').filter(Boolean);
      assert.ok(again.length > 0 && again.every((l) => JSON.parse(l).type === 'color'), 'a stage trained again asks its own question types');
      const final = await trainBase(join(dir, 'two'), 3, undefined, curriculum, { after: { stage: 'a-again', model: kept } });
      assert.equal(final, join(dir, 'two', 'sft-b', 'final'));
      assert.ok(existsSync(join(final, 'model.safetensors')));
      for (const skipped of ['init', 'sft-a', 'sft-a-again']) assert.ok(!existsSync(join(dir, 'two', skipped)), skipped);
      // stage b's world is seeded by its worldSeed (here make-base's seed + 0: stage a's world) in both runs
      const whole = await trainBase(join(dir, 'one'), 3, undefined, curriculum);
      assert.equal(whole, join(dir, 'one', 'sft-b', 'final'));
      const annotations = (run: string, world: string) => readFile(join(dir, run, world, 'train-annotations.jsonl'), 'utf8');
      assert.equal(await annotations('one', 'world-b'), await annotations('two', 'world-b'));
      assert.equal(await annotations('one', 'world-b'), await annotations('one', 'world-a'));
      await assert.rejects(trainBase(join(dir, 'three'), 3, undefined, curriculum, { after: { stage: 'c', model: kept } }),
        /after 'c' is not a stage of this curriculum \(a, a-again, b\)/);
      await assert.rejects(trainBase(join(dir, 'three'), 3, undefined, curriculum, { after: { stage: 'a', model: join(dir, 'none') } }),
        /after 'a': .*none has no model.safetensors/);
      await assert.rejects(trainBase(join(dir, 'three'), 3, undefined, curriculum, { after: { stage: 'b', model: kept }, through: 'a' }),
        /no stage to run/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a stage's learning rate reaches its training config (1e-3 unless it says)", () => {
    const stage = BASE_CURRICULUM[0]!;
    assert.equal(stageTrainConfig(stage, 'm', 'd.jsonl', 'o', 1).lr, 1e-3);
    assert.equal(stageTrainConfig({ ...stage, lr: 3e-4 }, 'm', 'd.jsonl', 'o', 1).lr, 3e-4);
  });
});
