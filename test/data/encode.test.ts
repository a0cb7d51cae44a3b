// lib/data/encode.ts: LLaVA-style model inputs (checked against LLaVA's recipe run through transformers by
// scripts/fixtures/make_tokenizer.py) and truncation that keeps the image and the answer's start.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  encodePair, encodePrompt, encodeSft, IGNORE_INDEX, IMAGE_TOKEN_INDEX, pairSequence,
} from '../../lib/data/encode.js';
import { DataError } from '../../lib/data/errors.js';
import { readPairs } from '../../lib/data/records.js';
import { assertVideosExist, videoBatches } from '../../lib/data/videos.js';
import { Tokenizer } from '../../lib/model/tokenizer.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';

const DIR = join(FIXTURES, 'tokenizer', 'qwen2-tiny');

interface LlavaSample {
  name: string; system: string | null; prompt: string; answer: string;
  prompt_text: string; prompt_ids: number[]; answer_ids: number[]; input_ids: number[]; labels: number[];
}
const samples = (JSON.parse(readFileSync(join(DIR, 'reference.json'), 'utf8')) as { llava: LlavaSample[] }).llava;

const count = (a: ArrayLike<number>, v: number) => Array.from(a).filter((x) => x === v).length;

const LONG_QUESTION =
  'At the beginning of the video a person walks into the kitchen, opens the fridge and takes out vegetables. ' +
  'What does the person do right after cutting the vegetables, and what happens at the end of the video?';
const LONG_ANSWER =
  'After cutting the vegetables, the man cooks them in a pan; at the end of the video the dog runs across the ' +
  'yard and then it sleeps.';

describe('model inputs', () => {
  let tok: Tokenizer;
  before(async () => {
    tok = await Tokenizer.load(DIR);
  });

  describe('as LLaVA builds them', () => {
    for (const s of samples) {
      it(`SFT: ${s.name}`, () => {
        const r = encodeSft(tok, { prompt: s.prompt, answer: s.answer }, s.system ? { system: s.system } : {});
        assert.deepEqual(Array.from(r.inputIds), s.input_ids);
        assert.deepEqual(Array.from(r.labels), s.labels);
        assert.equal(r.promptLength, s.prompt_ids.length);
        assert.equal(r.imageIndex, s.prompt_ids.indexOf(IMAGE_TOKEN_INDEX));
        assert.equal(r.truncation, null);
      });
    }

    it('labels are -100 on the whole prompt (system, user turn, template, image) and the answer ids after', () => {
      const s = samples[0]!;
      const r = encodeSft(tok, s, { visualTokens: 196 });
      assert.equal(count(r.inputIds, IMAGE_TOKEN_INDEX), 1);
      assert.equal(r.inputIds[r.imageIndex], IMAGE_TOKEN_INDEX);
      assert.ok(Array.from(r.labels.subarray(0, r.promptLength)).every((l) => l === IGNORE_INDEX));
      assert.deepEqual(Array.from(r.labels.subarray(r.promptLength)), Array.from(r.inputIds.subarray(r.promptLength)));
      // The answer ends with Qwen2's end of turn, which LLaVA trains on; the newline after it is not part of it.
      assert.equal(r.labels.at(-1), tok.eos!.id);
      assert.equal(tok.decode(r.inputIds.subarray(r.promptLength)), `${s.answer}<|im_end|>`);
      assert.equal(r.length, r.inputIds.length - 1 + 196);
    });

    it('a pair shares the prompt ids; each side is the prompt then its answer', () => {
      const [a, b] = [samples[0]!, samples[1]!];
      const pair = encodePair(tok, { prompt: a.prompt, chosen: a.answer, rejected: b.answer });
      assert.deepEqual(Array.from(pair.promptIds), a.prompt_ids);
      assert.deepEqual(Array.from(pair.chosenIds), a.answer_ids);
      assert.deepEqual(Array.from(pair.rejectedIds), b.answer_ids);
      const chosen = pairSequence(pair, 'chosen');
      assert.deepEqual(Array.from(chosen.inputIds), a.input_ids);
      assert.deepEqual(Array.from(chosen.labels), a.labels);
      const rejected = pairSequence(pair, 'rejected');
      assert.deepEqual(Array.from(rejected.inputIds), [...a.prompt_ids, ...b.answer_ids]);
      assert.equal(count(rejected.labels, IGNORE_INDEX), a.prompt_ids.length);
    });

    it('the prompt alone, for generation', () => {
      const s = samples[2]!;
      const p = encodePrompt(tok, s.prompt, { system: s.system! });
      assert.deepEqual(Array.from(p.ids), s.prompt_ids);
      assert.equal(p.imageIndex, s.prompt_ids.indexOf(IMAGE_TOKEN_INDEX));
    });

    it('a prompt without <image> gets the video first (LLaVA\'s "<image>\\n"); one with it keeps it where it stands', () => {
      const first = Array.from(encodePrompt(tok, 'Which shape is red?').ids);
      assert.deepEqual(first, Array.from(encodePrompt(tok, '<image>\nWhich shape is red?').ids));
      // the same tokens either way round, the image moved: the question comes before it
      const after = encodePrompt(tok, 'Which shape is red?\n<image>');
      assert.deepEqual([...after.ids].sort(), [...first].sort());
      assert.ok(after.imageIndex > first.indexOf(IMAGE_TOKEN_INDEX));
      assert.equal(after.ids[after.imageIndex], IMAGE_TOKEN_INDEX);
    });

    it('refuses a question with two <image> placeholders, naming the record and field', () => {
      const source = { file: 'pairs.jsonl', line: 4 };
      assert.throws(
        () => encodeSft(tok, { prompt: '<image> and <image>?', answer: 'x', source }),
        (e: unknown) => e instanceof DataError && e.message === 'pairs.jsonl:4: prompt: has 2 <image> placeholders; a record has one video',
      );
      assert.throws(() => encodeSft(tok, { prompt: 'q', answer: 'a' }, { system: 'see <image>' }), /rendered prompt has 2 <image>/);
    });

    it('validates options', () => {
      assert.throws(() => encodeSft(tok, samples[0]!, { maxLength: 0 }), /encodeSft: options: maxLength/);
      assert.throws(() => encodePair(tok, { prompt: 'q', chosen: 'a', rejected: 'b' }, { visualTokens: -1 }), /encodePair: options: visualTokens/);
    });
  });

  describe('truncation', () => {
    const full = () => encodePair(tok, { prompt: LONG_QUESTION, chosen: LONG_ANSWER, rejected: 'The man leaves.' });
    const fullLength = (visual: number) => {
      const p = full();
      return p.promptIds.length - 1 + visual + Math.max(p.chosenIds.length, p.rejectedIds.length);
    };

    it('leaves a sequence that fits alone', () => {
      const pair = encodePair(tok, { prompt: LONG_QUESTION, chosen: LONG_ANSWER, rejected: 'x' }, {
        maxLength: fullLength(64), visualTokens: 64,
      });
      assert.equal(pair.truncation, null);
    });

    it("cuts the answers' ends first, keeping the prompt whole, and says what it dropped", () => {
      const original = full();
      const maxLength = fullLength(100) - 10;
      const pair = encodePair(tok, { prompt: LONG_QUESTION, chosen: LONG_ANSWER, rejected: 'The man leaves.' }, {
        maxLength, visualTokens: 100,
      });
      assert.deepEqual(pair.promptIds, original.promptIds);
      assert.equal(pair.chosenIds.length, original.chosenIds.length - 10);
      assert.deepEqual(pair.chosenIds, original.chosenIds.subarray(0, pair.chosenIds.length));
      assert.deepEqual(pair.rejectedIds, original.rejectedIds); // short enough already
      const t = pair.truncation!;
      assert.equal(t.lengthBefore, maxLength + 10);
      assert.equal(t.lengthAfter, maxLength);
      assert.deepEqual(t.dropped.map((d) => [d.part, d.side, d.tokens, d.of]), [['chosen', 'end', 10, original.chosenIds.length]]);
      assert.equal(tok.decode(pair.chosenIds) + t.dropped[0]!.text, `${LONG_ANSWER}<|im_end|>`);
      assert.equal(t.summary, `dropped the last 10 of ${original.chosenIds.length} chosen tokens`);
    });

    it('then drops question text after the image, never the image, the template or the answer start', () => {
      const original = full();
      const visualTokens = 200;
      const maxLength = original.promptIds.length - 1 + visualTokens - 15 + 8; // needs 15 question tokens gone
      const pair = encodePair(tok, { prompt: LONG_QUESTION, chosen: LONG_ANSWER, rejected: 'The man leaves.' }, {
        maxLength, visualTokens, minAnswerTokens: 8,
      });
      const t = pair.truncation!;
      // The image is where it was, the system turn before it and the template tail after the question untouched.
      assert.equal(pair.imageIndex, original.imageIndex);
      assert.equal(pair.promptIds[pair.imageIndex], IMAGE_TOKEN_INDEX);
      assert.deepEqual(pair.promptIds.subarray(0, pair.imageIndex + 1), original.promptIds.subarray(0, original.imageIndex + 1));
      const tail = tok.encode('<|im_end|>\n<|im_start|>assistant\n');
      assert.deepEqual(Array.from(pair.promptIds.subarray(-tail.length)), tail);
      // Each answer keeps its first 8 tokens.
      assert.deepEqual(pair.chosenIds, original.chosenIds.subarray(0, 8));
      assert.deepEqual(pair.rejectedIds, original.rejectedIds.subarray(0, 8));
      assert.equal(pair.promptIds.length - 1 + visualTokens + 8, maxLength);
      assert.equal(t.lengthAfter, maxLength);
      const question = t.dropped.find((d) => d.part === 'question')!;
      assert.equal(question.side, 'start');
      assert.equal(question.tokens, 15);
      // What was dropped and what is left make the question again.
      const left = tok.decode(pair.promptIds.subarray(pair.imageIndex + 1, pair.promptIds.length - tail.length));
      assert.equal(question.text + left, `\n${LONG_QUESTION}`);
      assert.match(t.summary, /^dropped the first 15 of \d+ question tokens, the last \d+ of \d+ chosen tokens/);
    });

    it("keepQuestion 'start' drops the question's end instead", () => {
      const original = full();
      const maxLength = original.promptIds.length - 1 + 10 - 5 + 8; // 5 question tokens must go
      const pair = encodePair(tok, { prompt: LONG_QUESTION, chosen: LONG_ANSWER, rejected: 'No.' }, {
        maxLength, visualTokens: 10, minAnswerTokens: 8, keepQuestion: 'start',
      });
      const question = pair.truncation!.dropped[0]!;
      assert.deepEqual([question.part, question.side, question.tokens], ['question', 'end', 5]);
      assert.ok(LONG_QUESTION.endsWith(question.text));
      assert.deepEqual(pair.promptIds.subarray(0, pair.imageIndex + 10), original.promptIds.subarray(0, original.imageIndex + 10));
      // The rejected answer is shorter than minAnswerTokens and stays whole.
      assert.deepEqual(pair.rejectedIds, encodePair(tok, { prompt: 'q', chosen: 'c', rejected: 'No.' }).rejectedIds);
    });

    it('SFT truncation counts visual tokens and labels only what is left of the answer', () => {
      const whole = encodeSft(tok, { prompt: LONG_QUESTION, answer: LONG_ANSWER }, { visualTokens: 64 });
      const maxLength = whole.length - 20;
      const r = encodeSft(tok, { prompt: LONG_QUESTION, answer: LONG_ANSWER }, { maxLength, visualTokens: 64 });
      assert.equal(r.length, maxLength);
      assert.equal(r.inputIds.length - 1 + 64, maxLength);
      assert.deepEqual(r.inputIds, whole.inputIds.subarray(0, r.inputIds.length));
      assert.equal(count(r.labels, IGNORE_INDEX), r.promptLength);
      assert.deepEqual(r.truncation!.dropped.map((d) => [d.part, d.tokens]), [['answer', 20]]);
    });

    it('is an error naming the record when the protected parts alone are too long', () => {
      const source = { file: 'sft.jsonl', line: 9 };
      assert.throws(
        () => encodeSft(tok, { prompt: 'Which came first?', answer: LONG_ANSWER, source }, { maxLength: 100, visualTokens: 90 }),
        (e: unknown) =>
          e instanceof DataError && e.line === 9 &&
          /^sft\.jsonl:9: cannot fit in maxLength 100: what truncation keeps \(the template, any text before the image, 90 visual tokens, the first 16 answer tokens\) takes \d+$/.test(e.message),
      );
    });
  });

  it('from a pairs file to batches of model inputs: read, check videos, batch by video, encode', async () => {
    const dir = tempDir();
    try {
      for (const v of ['a.mp4', 'b.mp4']) writeFileSync(join(dir, v), '');
      const file = join(dir, 'pairs.jsonl');
      const records = [
        { id: '1', video: 'a.mp4', prompt: 'What happens first?', chosen: 'The red circle moves left.', rejected: 'Nothing.' },
        { id: 'b.mp4', question: 'What happens last?', answer: 'The dog sleeps.', rejected: 'The dog runs.' },
        { id: '3', video: 'a.mp4', prompt: '<image>\nWhat happens last?', chosen: 'The blue square moves up.', rejected: 'It stops.' },
      ];
      writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
      const pairs = await readPairs(file).toArray();
      await assertVideosExist(pairs);
      const batches = videoBatches(pairs, { batchSize: 3, seed: 1 });
      assert.equal(batches.length, 1);
      assert.deepEqual(batches[0]!.groups.map((g) => g.records.length).sort(), [1, 2]);
      for (const group of batches[0]!.groups) {
        for (const pair of group.records) {
          const inputs = encodePair(tok, pair, { maxLength: 512, visualTokens: 64 });
          assert.equal(count(inputs.promptIds, IMAGE_TOKEN_INDEX), 1);
          assert.equal(tok.decode(inputs.rejectedIds), `${pair.rejected}<|im_end|>`);
        }
      }
    } finally {
      removeDir(dir);
    }
  });

  describe("with a model's video markup (Qwen2.5-VL's <|vision_start|> ... <|vision_end|>)", () => {
    const QWEN = join(FIXTURES, 'hf', 'qwen2_5_vl_prompt');
    const reference = JSON.parse(readFileSync(join(QWEN, 'cases.json'), 'utf8')) as {
      video_pad: number; cases: { system: string | null; question: string; ids: number[] }[];
    };
    let qwen: Tokenizer;
    before(async () => {
      qwen = await Tokenizer.load(QWEN);
      qwen.setVideoMarkup({ before: '<|vision_start|>', after: '<|vision_end|>', separator: '' });
    });

    for (const c of reference.cases) {
      it(`a string prompt's ids are those transformers renders for a video part then the text${c.system ? ' (with a system turn)' : ''}`, () => {
        const { ids } = encodePrompt(qwen, c.question, c.system ? { system: c.system } : {});
        assert.deepEqual(Array.from(ids), c.ids.map((id) => (id === reference.video_pad ? IMAGE_TOKEN_INDEX : id)));
      });
    }

    it('adds no second pair of markers where the template writes them, and truncation keeps them', async () => {
      const start = qwen.tokenToId('<|vision_start|>')!, end = qwen.tokenToId('<|vision_end|>')!;
      const marked = await Tokenizer.load(QWEN);
      marked.setVideoMarkup({ before: '<|vision_start|>', after: '<|vision_end|>', separator: '' });
      const question = `<|vision_start|><image><|vision_end|>${LONG_QUESTION}`;
      const once = Array.from(encodePrompt(marked, question).ids);
      assert.deepEqual(once, Array.from(encodePrompt(qwen, LONG_QUESTION).ids));
      const at = once.indexOf(IMAGE_TOKEN_INDEX);
      assert.deepEqual([once[at - 1], once[at + 1]], [start, end]);
      assert.equal(count(once, start), 1);
      // a prompt cut to fit keeps the markers on both sides of the video and drops question text only
      const pair = encodePair(qwen, { prompt: LONG_QUESTION, chosen: 'yes', rejected: 'no' }, { maxLength: once.length - 10 });
      const cut = Array.from(pair.promptIds);
      assert.ok(pair.truncation && cut.length < once.length, 'the question was cut');
      assert.deepEqual([cut[pair.imageIndex - 1], cut[pair.imageIndex + 1]], [start, end]);
      assert.ok(pair.truncation?.dropped.every((d) => d.part === 'question'), pair.truncation?.summary);
    });
  });
});
