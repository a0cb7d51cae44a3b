// lib/synthetic/questions.ts and records.ts: every answer agrees with the events (checked by an independent
// oracle), multiple-choice options are four distinct plausible ones, and answer letters are balanced.
import assert from 'node:assert/strict';

import { caption } from '../../lib/synthetic/captions.js';
import { COMPREHENSIVE_TYPES, LOCALIZED_TYPES, makeQuestions } from '../../lib/synthetic/questions.js';
import { Random } from '../../lib/synthetic/random.js';
import { formatChoices, LetterSchedule, questionRecords } from '../../lib/synthetic/records.js';
import { makeVideo } from '../../lib/synthetic/world.js';
import { answerChoice, answerOpen } from './oracle.js';

const SEEDS = Array.from({ length: 300 }, (_, i) => i);

describe('synthetic questions', () => {
  it('answers every question, open and multiple choice, as the events say (300 short and 300 long videos)', () => {
    let checked = 0;
    for (const length of ['short', 'long'] as const) {
      for (const seed of SEEDS) {
        const video = makeVideo(seed, { length });
        for (const q of makeQuestions(video, seed)) {
          assert.equal(answerOpen(q.question, video.events), q.answer, `seed ${seed} ${length}: ${q.question}`);
          assert.equal(answerChoice(q.choiceQuestion, q.choices, video.events), 0, `seed ${seed} ${length}: ${q.choiceQuestion}`);
          checked += 1;
        }
      }
    }
    assert.ok(checked > 6000, `${checked} questions`);
  });

  it('asks every type in nearly every video, localized about its events, comprehensive about all', () => {
    const counts = new Map<string, number>();
    for (const seed of SEEDS) {
      const video = makeVideo(seed, { length: seed % 2 ? 'long' : 'short' });
      for (const q of makeQuestions(video, seed)) {
        counts.set(q.type, (counts.get(q.type) ?? 0) + 1);
        const involved = q.events.map((i) => video.events[i]!);
        if (q.kind === 'localized') {
          assert.ok((LOCALIZED_TYPES as readonly string[]).includes(q.type));
          const start = Math.min(...involved.map((e) => e.start)) / video.fps;
          const end = Math.max(...involved.map((e) => e.end)) / video.fps;
          assert.deepEqual(q.span, [start, end]);
          if (q.type === 'before' || q.type === 'after') {
            assert.equal(q.events[1]! - q.events[0]!, 1);
            assert.ok(involved.map(caption).includes(q.answer));
          }
        } else {
          assert.ok((COMPREHENSIVE_TYPES as readonly string[]).includes(q.type));
          assert.deepEqual(q.span, [0, video.frames / video.fps]);
        }
      }
    }
    for (const type of [...LOCALIZED_TYPES, ...COMPREHENSIVE_TYPES]) {
      assert.ok((counts.get(type) ?? 0) >= SEEDS.length * 0.9, `${type}: ${counts.get(type)} of ${SEEDS.length} videos`);
    }
  });

  it('offers four distinct options, drawn from the same video where it has them', () => {
    let fromVideo = 0;
    let total = 0;
    for (const seed of SEEDS) {
      const video = makeVideo(seed, { length: 'long' });
      const captions = new Set(video.events.map(caption));
      for (const q of makeQuestions(video, seed)) {
        assert.equal(new Set(q.choices).size, 4, `${q.question}: ${q.choices}`);
        if (q.type === 'before' || q.type === 'after' || q.type === 'first' || q.type === 'last') {
          total += 3;
          fromVideo += q.choices.slice(1).filter((c) => captions.has(c)).length;
        }
        if (q.type === 'count' || q.type === 'count-color') {
          for (const c of q.choices.slice(1)) assert.ok(Math.abs(Number(c) - Number(q.answer)) <= 3);
        }
      }
    }
    assert.equal(fromVideo, total, 'long videos have captions enough for every distractor');
  });

  it('is the same for the same seed', () => {
    const video = makeVideo(5, { length: 'long' });
    assert.deepEqual(makeQuestions(video, 9), makeQuestions(video, 9));
    assert.notDeepEqual(makeQuestions(video, 9), makeQuestions(video, 10));
  });

  it('balances answer letters exactly: each block of four uses each letter once', () => {
    const letters = new LetterSchedule(1);
    const counts = [0, 0, 0, 0];
    for (let block = 0; block < 250; block++) {
      const seen = new Set(Array.from({ length: 4 }, () => letters.next()));
      assert.equal(seen.size, 4);
      for (const l of seen) counts[l]! += 1;
    }
    assert.deepEqual(counts, [250, 250, 250, 250]);
  });

  it('makes open, multiple-choice and benchmark records of one question that agree with each other', () => {
    const video = makeVideo(2, { length: 'short' });
    const [q] = makeQuestions(video, 2);
    const r = questionRecords({ id: 'v', video: 'videos/v.mp4', length: 'short' }, q!, 2, new Random(1));
    assert.equal(r.benchmark.answer, 'C');
    assert.equal(r.benchmark.options[2], q!.answer);
    assert.deepEqual([...r.benchmark.options].sort(), [...q!.choices].sort());
    assert.equal(r.choice.answer, 'C');
    assert.equal(r.choice.prompt, `<image>\n${formatChoices(q!.choiceQuestion, r.benchmark.options)}`);
    assert.match(r.choice.prompt, /\nA\. .+\nB\. .+\nC\. .+\nD\. .+\nAnswer with the letter of the correct option\.$/);
    assert.equal(r.open.prompt, `<image>\n${q!.question}`);
    assert.equal(r.open.answer, q!.answer);
    assert.deepEqual([r.open.kind, r.open.type, r.open.length, r.benchmark.kind], [q!.kind, q!.type, 'short', q!.kind]);
  });
});
