// lib/data/records.ts and the reader in lib/data/jsonl.ts: the field's record formats, normalised; errors that name
// the file, the line and the field; skip mode; video paths.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { DataError } from '../../lib/data/errors.js';
import { readAnnotations, readBenchmark, readPairs, readSft } from '../../lib/data/records.js';
import { removeDir, tempDir } from '../helpers.js';

const jsonl = (...records: unknown[]) => records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';

/** The DataError a promise rejects with. */
async function dataError(promise: Promise<unknown>): Promise<DataError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof DataError, `expected a DataError, got ${String(error)}`);
    assert.equal(error.code, 'ERR_TPO_DATA');
    return error;
  }
  assert.fail('expected an error');
}

const LLAVA_HOUND = {
  id: 'v_abc_0', video: 'v_abc', prompt: 'What is the man doing?', answer: 'Cooking.', chosen: 'He is cooking pasta.',
  rejected: 'He is swimming.', chosen_score: 5, rejected_score: 1.5,
};

describe('dataset records', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };

  describe('preference pairs', () => {
    it('reads TPO / LLaVA-Hound records, keeping unknown fields in meta', async () => {
      const file = write('pairs.jsonl', jsonl(LLAVA_HOUND, { id: 7, video: 'clips/b.mp4', prompt: 'Q?', chosen: 'A', rejected: 'B', type: 'localized' }));
      const pairs = await readPairs(file).toArray();
      assert.deepEqual(pairs[0], {
        id: 'v_abc_0', video: 'v_abc', videoPath: join(dir, 'v_abc'), prompt: 'What is the man doing?',
        chosen: 'He is cooking pasta.', rejected: 'He is swimming.', chosenScore: 5, rejectedScore: 1.5,
        meta: { answer: 'Cooking.' }, source: { file, line: 1 },
      });
      assert.deepEqual(
        [pairs[1]!.id, pairs[1]!.videoPath, pairs[1]!.meta, pairs[1]!.chosenScore, pairs[1]!.source.line],
        ['7', join(dir, 'clips', 'b.mp4'), { type: 'localized' }, undefined, 2],
      );
    });

    it("reads TimeWarp's records: question and answer, the video named by the id", async () => {
      const file = write('timewarp.jsonl', jsonl({ id: 'scene_0042.mp4', question: 'What happens after the cut?', answer: 'She pours tea.', rejected: 'She leaves.' }));
      const [pair] = await readPairs(file).toArray();
      assert.deepEqual(
        [pair!.video, pair!.videoPath, pair!.prompt, pair!.chosen, pair!.rejected],
        ['scene_0042.mp4', join(dir, 'scene_0042.mp4'), 'What happens after the cut?', 'She pours tea.', 'She leaves.'],
      );
    });

    it('reads a JSON array file (as TimeWarp and LLaVA-Hound save them), numbering records by index', async () => {
      const file = write('pairs.json', JSON.stringify([LLAVA_HOUND, { ...LLAVA_HOUND, id: 'two', rejected: 5 }], null, 2));
      const error = await dataError(readPairs(file).toArray());
      assert.equal(error.message, `${file}[1]: rejected: Invalid input: expected string, received number`);
      assert.equal(error.index, 1);
      const ok = write('ok.json', JSON.stringify([LLAVA_HOUND]));
      assert.deepEqual((await readPairs(ok).toArray())[0]!.source, { file: ok, index: 0 });
    });

    it('skips blank lines, and reads CRLF line ends and a BOM', async () => {
      const file = write('crlf.jsonl', '\uFEFF' + JSON.stringify(LLAVA_HOUND) + '\r\n\r\n   \r\n' + JSON.stringify({ ...LLAVA_HOUND, id: 'b' }) + '\r\n');
      const pairs = await readPairs(file).toArray();
      assert.deepEqual(pairs.map((p) => [p.id, p.source.line]), [['v_abc_0', 1], ['b', 4]]);
    });
  });

  describe('malformed lines', () => {
    const good = JSON.stringify(LLAVA_HOUND);

    it('invalid JSON names the file and line', async () => {
      const file = write('bad.jsonl', jsonl(good, good, '{"id": "x", "video": '));
      const error = await dataError(readPairs(file).toArray());
      assert.equal(error.file, file);
      assert.equal(error.line, 3);
      assert.match(error.message, new RegExp(`^${file}:3: not valid JSON \\(`));
    });

    it('a missing field names the field', async () => {
      const { rejected: _, ...noRejected } = LLAVA_HOUND;
      const error = await dataError(readPairs(write('p.jsonl', jsonl(good, noRejected))).toArray());
      assert.deepEqual([error.line, error.field], [2, 'rejected']);
      assert.equal(error.message, `${join(dir, 'p.jsonl')}:2: rejected: Invalid input: expected string, received undefined`);
    });

    it('a mistyped field names the field', async () => {
      const error = await dataError(readPairs(write('p.jsonl', jsonl({ ...LLAVA_HOUND, chosen_score: 'high' }))).toArray());
      assert.deepEqual([error.line, error.field], [1, 'chosen_score']);
    });

    it('a missing prompt says which names are accepted', async () => {
      const { prompt: _, ...noPrompt } = LLAVA_HOUND;
      const error = await dataError(readPairs(write('p.jsonl', jsonl(noPrompt))).toArray());
      assert.equal(error.field, 'prompt');
      assert.match(error.message, /prompt: missing \(TPO and LLaVA-Hound write prompt, TimeWarp question\)/);
    });

    it('a missing video, an empty answer, a record that is not an object', async () => {
      const { video: _, ...noVideo } = LLAVA_HOUND;
      const e1 = await dataError(readPairs(write('a.jsonl', jsonl(noVideo))).toArray());
      assert.equal(e1.field, 'video');
      assert.match(e1.message, /video: missing \(and id is not a video file name/);
      const e2 = await dataError(readPairs(write('b.jsonl', jsonl({ ...LLAVA_HOUND, chosen: '  ' }))).toArray());
      assert.deepEqual([e2.field, e2.message.endsWith('chosen: must not be empty')], ['chosen', true]);
      const e3 = await dataError(readPairs(write('c.jsonl', jsonl('[1, 2]'))).toArray());
      assert.match(e3.message, /c\.jsonl:1: a record must be a JSON object, not an array$/);
    });

    it('skip mode leaves bad records out and counts them', async () => {
      const skipped: DataError[] = [];
      const file = write('mixed.jsonl', jsonl(good, '{oops', { ...LLAVA_HOUND, id: 'b' }, { id: 'c' }, { ...LLAVA_HOUND, id: 'd' }));
      const reader = readPairs(file, { onError: 'skip', onSkip: (e) => skipped.push(e) });
      const pairs = await reader.toArray();
      assert.deepEqual(pairs.map((p) => p.id), ['v_abc_0', 'b', 'd']);
      assert.deepEqual({ records: reader.stats.records, skipped: reader.stats.skipped }, { records: 3, skipped: 2 });
      assert.deepEqual(reader.stats.errors.map((e) => e.line), [2, 4]);
      assert.deepEqual(skipped, reader.stats.errors);
      // Reading again counts afresh.
      await reader.toArray();
      assert.equal(reader.stats.skipped, 2);
    });

    it('a last line cut off mid-write is reported as such; a whole last line without a newline is fine', async () => {
      const torn = write('torn.jsonl', good + '\n' + good + '\n{"id": "v_abc_2", "vid');
      const error = await dataError(readPairs(torn).toArray());
      assert.equal(error.line, 3);
      assert.match(error.message, /:3: the last line has no newline and is not valid JSON: the file looks cut off while being written$/);
      const reader = readPairs(torn, { onError: 'skip' });
      assert.equal((await reader.toArray()).length, 2);
      assert.equal(reader.stats.skipped, 1);
      const unterminated = write('whole.jsonl', good + '\n' + good);
      assert.equal((await readPairs(unterminated).toArray()).length, 2);
    });

    it('a missing file is an error naming it', async () => {
      const error = await dataError(readPairs(join(dir, 'nope.jsonl')).toArray());
      assert.match(error.message, /nope\.jsonl: cannot read: ENOENT/);
    });

    it('reads a file larger than one stream chunk, numbering lines across chunks', async () => {
      const long = { ...LLAVA_HOUND, chosen: 'x'.repeat(50_000) };
      const lines = Array.from({ length: 20 }, (_, i) => ({ ...long, id: `r${i}` }));
      const file = write('big.jsonl', jsonl(...lines, '{"broken'));
      const reader = readPairs(file, { onError: 'skip' });
      const pairs = await reader.toArray();
      assert.deepEqual(pairs.map((p) => p.source.line), Array.from({ length: 20 }, (_, i) => i + 1));
      assert.equal(pairs[19]!.chosen.length, 50_000);
      assert.equal(reader.stats.errors[0]!.line, 21);
    });
  });

  describe('video paths', () => {
    it('resolve beside the dataset file, under a video root, or stay absolute', async () => {
      const file = write('p.jsonl', jsonl({ ...LLAVA_HOUND, video: 'a/x.mp4' }, { ...LLAVA_HOUND, video: '/data/y.mp4' }));
      assert.deepEqual((await readPairs(file).toArray()).map((p) => p.videoPath), [join(dir, 'a', 'x.mp4'), '/data/y.mp4']);
      const rooted = await readPairs(file, { videoRoot: '/videos' }).toArray();
      assert.deepEqual(rooted.map((p) => p.videoPath), ['/videos/a/x.mp4', '/data/y.mp4']);
      const relativeRoot = await readPairs(file, { videoRoot: 'vids' }).toArray();
      assert.equal(relativeRoot[0]!.videoPath, resolve('vids', 'a', 'x.mp4'));
      assert.equal(relativeRoot[0]!.video, 'a/x.mp4');
    });

    it('validates options', () => {
      assert.throws(() => readPairs(join(dir, 'p.jsonl'), { onError: 'ignore' } as never), /readPairs: options: onError/);
      assert.throws(() => readPairs(join(dir, 'p.jsonl'), { videoRoot: '' }), /readPairs: options: videoRoot/);
    });
  });

  describe('SFT records', () => {
    it('reads {id, video, prompt, answer} and TimeWarp {id, question, answer}', async () => {
      const file = write('sft.jsonl', jsonl(
        { id: 's1', video: 'v.mp4', prompt: 'What first?', answer: 'A cat.' },
        { id: 'clip.mkv', question: 'What last?', answer: 'A dog.', source: 'timewarp' },
      ));
      const records = await readSft(file).toArray();
      assert.deepEqual(records.map((r) => [r.id, r.videoPath, r.prompt, r.answer, r.meta]), [
        ['s1', join(dir, 'v.mp4'), 'What first?', 'A cat.', {}],
        ['clip.mkv', join(dir, 'clip.mkv'), 'What last?', 'A dog.', { source: 'timewarp' }],
      ]);
    });

    it('names a missing answer', async () => {
      const error = await dataError(readSft(write('s.jsonl', jsonl({ id: 's', video: 'v.mp4', prompt: 'q' }))).toArray());
      assert.deepEqual([error.line, error.field], [1, 'answer']);
    });
  });

  describe('video annotations', () => {
    const timewarp = {
      video: 'abc.mp4', annotation_filename: 'abc.json',
      description: ['A man walks in. He sits down. ', 'He reads a book. '],
      scene_timestamps: [[0.0, 4.5], [4.5, 9.25]],
    };

    it("reads TimeWarp's {video, description, scene_timestamps} as captions with time spans", async () => {
      const [a] = await readAnnotations(write('ann.jsonl', jsonl(timewarp))).toArray();
      assert.deepEqual(a!.captions, [
        { start: 0, end: 4.5, text: 'A man walks in. He sits down.' },
        { start: 4.5, end: 9.25, text: 'He reads a book.' },
      ]);
      assert.deepEqual([a!.videoPath, a!.meta], [join(dir, 'abc.mp4'), { annotation_filename: 'abc.json' }]);
    });

    it('names spans that do not match the captions, or run backwards', async () => {
      const e1 = await dataError(readAnnotations(write('a.jsonl', jsonl({ ...timewarp, scene_timestamps: [[0, 1]] }))).toArray());
      assert.equal(e1.field, 'scene_timestamps');
      assert.match(e1.message, /has 1 spans but description has 2 captions/);
      const e2 = await dataError(readAnnotations(write('b.jsonl', jsonl(timewarp, { ...timewarp, scene_timestamps: [[0, 1], [5, 2]] }))).toArray());
      assert.deepEqual([e2.line, e2.field], [2, 'scene_timestamps.1']);
      assert.match(e2.message, /start is after end/);
      const e3 = await dataError(readAnnotations(write('c.jsonl', jsonl({ ...timewarp, scene_timestamps: [[0, 1], [2]] }))).toArray());
      assert.equal(e3.field, 'scene_timestamps.1');
    });
  });

  describe('multiple-choice benchmark items', () => {
    const item = { id: 'q1', video: 'v.mp4', question: 'Which came first?', options: ['The cat', 'The dog', 'A dog runs', 'Neither'] };

    it('accepts the answer as a letter, an option text or a 0-based index', async () => {
      const file = write('bench.jsonl', jsonl(
        { ...item, answer: 'B' }, { ...item, answer: '(C)' }, { ...item, answer: 'D. Neither' }, { ...item, answer: 'A dog runs' },
        { ...item, answer: 0 }, { ...item, options: { A: 'yes', B: 'no' }, answer: 'B', category: 'order' },
      ));
      const items = await readBenchmark(file).toArray();
      assert.deepEqual(items.map((i) => [i.answer, i.answerLetter]), [[1, 'B'], [2, 'C'], [3, 'D'], [2, 'C'], [0, 'A'], [1, 'B']]);
      assert.deepEqual([items[5]!.options, items[5]!.meta], [['yes', 'no'], { category: 'order' }]);
    });

    it('matches an answer written as the text of an option up to case, punctuation and spacing, never as a letter', async () => {
      const shapes = { id: 'q', video: 'v.mp4', question: 'Which shape?', options: ['blue square', 'Red circle', 'green  triangle'] };
      const file = write('loose.jsonl', jsonl(
        { ...shapes, answer: 'red circle.' }, { ...shapes, answer: 'A red circle' }, { ...shapes, answer: ' Green triangle ' },
        { ...shapes, answer: 'B. red circle' },
      ));
      const items = await readBenchmark(file).toArray();
      // "A red circle" is option B's text with an article, not option A.
      assert.deepEqual(items.map((i) => i.answerLetter), ['B', 'B', 'C', 'B']);
    });

    it('names file:line when an answer matches no option, matches several, or contradicts its letter', async () => {
      const shapes = { id: 'q', video: 'v.mp4', question: 'Which shape?', options: ['blue square', 'red circle'] };
      const cases: [unknown, RegExp][] = [
        [{ ...shapes, answer: 'purple hexagon' }, /none\.jsonl:2: answer: 'purple hexagon' is not one of the 2 options .*A\. blue square \| B\. red circle/],
        [{ ...shapes, options: ['Red circle', 'red circle!'], answer: 'RED CIRCLE' }, /none\.jsonl:2: answer: .* matches options A, B alike/],
        [{ ...shapes, answer: 'A. red circle' }, /none\.jsonl:2: answer: 'A\. red circle' names option A but its text is option B's/],
      ];
      for (const [record, expected] of cases) {
        const e = await dataError(readBenchmark(write('none.jsonl', jsonl({ ...shapes, answer: 0 }, record))).toArray());
        assert.equal(e.field, 'answer');
        assert.match(e.message, expected);
      }
    });

    it('rejects more than 26 options (they cannot be lettered), naming file:line', async () => {
      const options = Array.from({ length: 27 }, (_, i) => `option ${i}`);
      const e = await dataError(readBenchmark(write('many.jsonl', jsonl({ ...item, options, answer: 0 }))).toArray());
      assert.equal(e.field, 'options');
      assert.match(e.message, /many\.jsonl:1: options: has 27 options; more than 26 cannot be lettered A to Z/);
    });

    it('names an answer that is not an option, and badly keyed options', async () => {
      const e1 = await dataError(readBenchmark(write('a.jsonl', jsonl({ ...item, answer: 'E' }))).toArray());
      assert.equal(e1.field, 'answer');
      assert.match(e1.message, /'E' is not one of the 4 options/);
      const e2 = await dataError(readBenchmark(write('b.jsonl', jsonl({ ...item, options: { A: 'x', C: 'y' }, answer: 'A' }))).toArray());
      assert.equal(e2.field, 'options');
      const e3 = await dataError(readBenchmark(write('c.jsonl', jsonl({ ...item, options: ['only one'], answer: 0 }))).toArray());
      assert.equal(e3.field, 'options');
    });
  });
});
