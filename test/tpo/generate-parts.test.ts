// The parts of lib/tpo/generate.ts, without a model: resume state, quotas and the mix, units of work and inputs,
// the Judge interface (synthetic, llm, none) with its side swap, and the records' schemas.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { DataError } from '../../lib/data/errors.js';
import type { ChatClient } from '../../lib/tpo/llm.js';
import { type Judge, llmJudge, makeJudge, noneJudge, settleSides, syntheticJudge } from '../../lib/tpo/judge.js';
import { mixed, quotas, quotasFilled } from '../../lib/tpo/quotas.js';
import { DroppedPair, PairRecord, SkipRecord } from '../../lib/tpo/records.js';
import type { TpoQuestion } from '../../lib/tpo/sources.js';
import { GenerationState, newSummary } from '../../lib/tpo/state.js';
import { inputsFor, syntheticWork } from '../../lib/tpo/work.js';
import { removeDir, tempDir } from '../helpers.js';

const question = (id: string, kind: 'localized' | 'comprehensive', video = 'v1.mp4'): TpoQuestion => ({
  id, video, videoPath: `/data/${video}`, kind, question: `What about ${id}?`, answer: 'red circle',
  ...(kind === 'localized' ? { span: [1, 2] as [number, number] } : {}),
});

describe('generation parts', () => {
  describe('resume state', () => {
    let dir: string;
    before(() => {
      dir = tempDir();
    });
    after(() => removeDir(dir));

    it('knows what is done, asks a question once per video (after normalisation), and counts', () => {
      const state = new GenerationState(
        [{ id: 'a', kind: 'localized', video: 'v.mp4', prompt: 'What colour?', judge: { keep: true, preferredCorrect: true, dispreferredCorrect: false } }],
        [{ id: 'b', kind: 'comprehensive', reason: 'same-answers' }, { id: 'v2.mp4', kind: 'video', reason: 'no-captions' }],
      );
      assert.ok(state.isDone('a') && state.isDone('b') && !state.isDone('c'));
      assert.equal(state.ask('v.mp4', 'what colour'), false, 'the same question, normalised');
      assert.equal(state.ask('other.mp4', 'What colour?'), true);
      assert.equal(state.ask('other.mp4', 'What colour?'), false);
      assert.deepEqual(state.summary, {
        kept: 1, dropped: { 'same-answers': 1, 'no-captions': 1 }, judged: 1, preferredCorrect: 1, dispreferredCorrect: 0,
        byKind: { localized: { kept: 1, dropped: 0 }, comprehensive: { kept: 0, dropped: 1 }, video: { kept: 0, dropped: 1 } },
      });
    });

    it('loads both files, leaves out a torn last line, and names a damaged line', async () => {
      const pairs = join(dir, 'pairs.jsonl');
      writeFileSync(pairs, '{"id": "a", "kind": "localized"}\n{"id": "b", "ki');
      const state = await GenerationState.load(pairs, join(dir, 'none.jsonl'));
      assert.deepEqual([...state.done], ['a']);
      writeFileSync(pairs, '{"id": "a", "kind": "localized"}\nnot json\n{"id": "b", "kind": "localized"}\n');
      await assert.rejects(GenerationState.load(pairs, join(dir, 'none.jsonl')), (e: unknown) => e instanceof DataError && /pairs\.jsonl:2: not valid JSON/.test(e.message));
      writeFileSync(pairs, '{"kind": "localized"}\n');
      await assert.rejects(GenerationState.load(pairs, join(dir, 'none.jsonl')), /pairs\.jsonl:1: not a record tpo generate writes/);
    });
  });

  describe('the mix and the quotas', () => {
    it('interleaves the kinds at the ratio, seeded; without a target stops when a kind runs out', () => {
      const qs = [...Array.from({ length: 6 }, (_, i) => question(`l${i}`, 'localized')), ...Array.from({ length: 2 }, (_, i) => question(`c${i}`, 'comprehensive'))];
      const even = mixed(qs, [5, 5], 1, true);
      assert.deepEqual(even.map((q) => q.kind), ['localized', 'comprehensive', 'localized', 'comprehensive', 'localized']);
      assert.deepEqual(mixed(qs, [5, 5], 1, true).map((q) => q.id), even.map((q) => q.id), 'the same seed, the same order');
      assert.equal(mixed(qs, [5, 5], 1, false).length, 8, 'with a target every question follows');
      assert.ok(mixed(qs, [1, 0], 1, true).every((q) => q.kind === 'localized'));
    });

    it('splits a target by the mix and counts down what was kept', () => {
      const summary = newSummary();
      assert.deepEqual(quotas(undefined, [5, 5], summary), { localized: Infinity, comprehensive: Infinity });
      assert.deepEqual(quotas(10, [5, 5], summary), { localized: 5, comprehensive: 5 });
      summary.byKind.localized = { kept: 5, dropped: 0 };
      summary.byKind.comprehensive = { kept: 4, dropped: 2 };
      assert.deepEqual(quotas(10, [5, 5], summary), { localized: 0, comprehensive: 1 });
      assert.equal(quotasFilled(quotas(10, [5, 5], summary)), false);
      assert.equal(quotasFilled(quotas(9, [5, 5], summary)), true);
    });
  });

  describe('units of work and inputs', () => {
    it('groups synthetic questions by video in order of first use', async () => {
      const work = syntheticWork([question('a', 'localized', 'v1.mp4'), question('b', 'comprehensive', 'v2.mp4'), question('c', 'comprehensive', 'v1.mp4')], [1, 1], 0, false);
      assert.equal(work.length, 2);
      const all = await Promise.all(work.map(async (w) => (await w.questions()).questions.map((q) => q.id).sort()));
      assert.deepEqual(all.flat().sort(), ['a', 'b', 'c']);
      for (const [k, w] of work.entries()) assert.ok(all[k]!.every((id) => (id === 'b' ? 'v2.mp4' : 'v1.mp4') === w.video));
    });

    it('gives TPO\'s plans, shared by questions of one input, and skips what a manipulation cannot ask', async () => {
      const settings = { manipulation: 'tpo' as const, frames: 8, sparseRatio: 0.25, seed: 0 };
      const local = await inputsFor(settings, question('a', 'localized'), new Map());
      assert.ok(!('skip' in local));
      assert.deepEqual(local.plans, { preferred: { kind: 'uniform', frames: 8, range: [1, 2] }, dispreferred: { kind: 'uniform', frames: 8, exclude: [[1, 2]] } });
      const whole = await inputsFor(settings, question('b', 'comprehensive'), new Map());
      assert.ok(!('skip' in whole) && whole.key === 'whole' && whole.plans.dispreferred.kind === 'uniform');
      const explicit = await inputsFor({ ...settings, manipulation: 'timewarp-explicit' }, { ...question('c', 'comprehensive'), type: 'count' }, new Map());
      assert.deepEqual(explicit, { skip: 'not-order-question' });
      const few = await inputsFor({ ...settings, manipulation: 'timewarp-explicit' }, { ...question('d', 'comprehensive'), type: 'order' }, new Map());
      assert.equal('skip' in few && few.skip, 'too-few-scenes');
    });
  });

  describe('judges', () => {
    const q = { question: 'Which shape?', answer: 'red circle', captions: [{ start: 0, end: 1, text: 'a red circle moves' }] };

    it('synthetic, none and llm share one interface', async () => {
      assert.deepEqual(await syntheticJudge.judge(q, 'The red circle.', 'blue square'), { keep: true, preferredCorrect: true, dispreferredCorrect: false });
      assert.equal((await syntheticJudge.judge(q, 'blue square', 'red circle')).reason, 'preferred-wrong');
      assert.equal((await noneJudge.judge(q, 'blue', 'Blue!')).reason, 'same-answers');
      assert.equal((await noneJudge.judge(q, '', 'b')).reason, 'empty-answer');
      assert.equal((await noneJudge.judge(q, 'blue', 'red')).keep, true);
      let asked = 0;
      const client = { complete: async () => (asked++, '{"correct": true, "consistent": true, "better": false}') } as unknown as ChatClient;
      const llm = llmJudge(client);
      const v = await llm.judge(q, 'red circle', 'blue square');
      assert.deepEqual(v, { keep: false, reason: 'not-better', preferredCorrect: true, dispreferredCorrect: false, llm: { correct: true, consistent: true, better: false } });
      assert.equal((await llm.judge(q, 'same', 'Same.')).reason, 'same-answers');
      assert.equal(asked, 1, 'answers that cannot pair are not sent to the LLM');
      assert.equal(makeJudge('none'), noneJudge);
      assert.throws(() => makeJudge('llm'), /needs an llm client/);
    });

    it('the side swap (manipulation none) lets the judge keep the pair the other way round', async () => {
      const prefersB: Judge = { kind: 'none', judge: async (_q, p) => ({ keep: p === 'b', ...(p === 'b' ? {} : { reason: 'preferred-wrong' as const }), preferredCorrect: p === 'b', dispreferredCorrect: false }) };
      assert.deepEqual((await settleSides(prefersB, q, 'a', 'b', true)).swapped, true);
      assert.deepEqual((await settleSides(prefersB, q, 'a', 'b', false)), { verdict: { keep: false, reason: 'preferred-wrong', preferredCorrect: false, dispreferredCorrect: false }, swapped: false });
    });
  });

  describe('record schemas', () => {
    const provenance = {
      kind: 'localized', type: 'color', manipulation: 'tpo', span: [1, 2], frames: { preferred: [8, 9], dispreferred: [0, 30] },
      reference: 'red', judge: { keep: true, preferredCorrect: true, dispreferredCorrect: false },
    };

    it('a kept pair has the training fields and its provenance, nothing else', () => {
      const pair = { id: 'q1', video: 'videos/v.mp4', prompt: 'What colour?', chosen: 'red', rejected: 'blue', ...provenance };
      assert.deepEqual(PairRecord.parse(pair), pair);
      assert.ok(!PairRecord.safeParse({ ...pair, chosen: undefined }).success);
      assert.ok(!PairRecord.safeParse({ ...pair, extra: 1 }).success);
      assert.ok(DroppedPair.safeParse({ id: 'q1', video: 'v', prompt: 'p', preferred: 'a', dispreferred: 'a', reason: 'same-answers', ...provenance }).success);
      assert.ok(SkipRecord.safeParse({ id: 'v.mp4', video: 'v.mp4', kind: 'video', reason: 'undecodable-video', detail: 'moov atom not found' }).success);
      assert.ok(!SkipRecord.safeParse({ id: 'v.mp4', video: 'v.mp4', kind: 'video' }).success, 'a skip says why');
    });
  });
});
