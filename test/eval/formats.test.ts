// lib/eval/formats.ts: Video-MME, MLVU, LongVideoBench and tpo benchmark files read into one item type with their
// categories; format detection; errors that name the file, the line or index, and the field.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { DataError } from '../../lib/data/errors.js';
import { detectFormat, readEvalBenchmark } from '../../lib/eval/formats.js';
import { removeDir, tempDir } from '../helpers.js';
import { makeWorld } from '../world-fixture.js';

/** The DataError a promise rejects with. */
async function dataError(promise: Promise<unknown>): Promise<DataError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof DataError, `expected a DataError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected an error');
}

const VIDEOMME = (videoID: string, question_id: string, answer = 'C') => ({
  video_id: '001', duration: 'short', domain: 'Knowledge', sub_category: 'Humanity & History', url: 'https://example.org/v',
  videoID, question_id, task_type: 'Counting Problem', question: 'How many shapes appear?',
  options: ['A. One.', 'B. Two.', 'C. Three.', 'D. Four.'], answer,
});
const MLVU = (video: string, answer = 'moves left') => ({
  video, duration: 7.5, question: 'What does the triangle do?', candidates: ['grows', 'moves left', 'moves down', 'stays still'],
  answer, question_type: 'plotQA',
});
const LVB = (id: string, video_path: string, correct_choice = 4) => ({
  id, video_id: id.split('_')[0], video_path, question: 'Which colour comes first?', candidates: ['red', 'blue', 'cyan', 'purple', 'green'],
  correct_choice, duration_group: 15, question_category: 'TOS', position: 2,
});

describe('benchmark formats', function () {
  this.timeout(120_000);
  let dir: string;
  let videos: string;
  let tpoBenchmark: string;
  before(async () => {
    dir = tempDir('tpo-eval-formats-');
    tpoBenchmark = (await makeWorld(join(dir, 'world'), 2)).benchmark;
    videos = join(dir, 'world', 'videos');
  });
  after(() => removeDir(dir));
  const write = (name: string, value: unknown) => {
    const file = join(dir, name);
    writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
    return file;
  };
  const jsonl = (...records: unknown[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';

  it('reads Video-MME: <videoID>.mp4 under the video root, letters stripped from the options, duration/domain/task_type', async () => {
    const file = write('videomme.json', [VIDEOMME('train-00000', '001-1'), VIDEOMME('train-00001', '001-2', 'A')]);
    const { format, items } = await readEvalBenchmark(file, { videoRoot: videos });
    assert.equal(format, 'videomme');
    assert.deepEqual(items.map((i) => [i.id, i.videoPath, i.answer, i.answerLetter]), [
      ['001-1', join(videos, 'train-00000.mp4'), 2, 'C'],
      ['001-2', join(videos, 'train-00001.mp4'), 0, 'A'],
    ]);
    assert.deepEqual(items[0]!.options, ['One.', 'Two.', 'Three.', 'Four.']);
    assert.deepEqual(items[0]!.category, { duration: 'short', domain: 'Knowledge', task_type: 'Counting Problem' });
    assert.deepEqual(items[0]!.meta, { video_id: '001', sub_category: 'Humanity & History', url: 'https://example.org/v' });
    assert.deepEqual(items[1]!.source, { file, index: 1 });
  });

  it('reads MLVU: the answer is an option text; records without an id are named by file and place', async () => {
    const file = write('4_count.json', [MLVU('train-00000.mp4'), MLVU('train-00001.mp4', 'stays still')]);
    const { format, items } = await readEvalBenchmark(file, { videoRoot: videos });
    assert.equal(format, 'mlvu');
    assert.deepEqual(items.map((i) => [i.id, i.videoPath, i.answer, i.answerLetter, i.category]), [
      ['4_count-0', join(videos, 'train-00000.mp4'), 1, 'B', { question_type: 'plotQA' }],
      ['4_count-1', join(videos, 'train-00001.mp4'), 3, 'D', { question_type: 'plotQA' }],
    ]);
    assert.deepEqual(items[0]!.meta, { duration: 7.5 });
  });

  it('reads LongVideoBench as JSONL: five candidates, a 0-based correct_choice, numeric duration groups as text', async () => {
    const file = write('lvb_val.jsonl', jsonl(LVB('86CxyhFV9MI_0', 'train-00000.mp4'), LVB('86CxyhFV9MI_1', 'train-00001.mp4', 0)));
    const { format, items } = await readEvalBenchmark(file, { videoRoot: videos });
    assert.equal(format, 'longvideobench');
    assert.deepEqual(items.map((i) => [i.id, i.videoPath, i.options.length, i.answer, i.answerLetter, i.source.line]), [
      ['86CxyhFV9MI_0', join(videos, 'train-00000.mp4'), 5, 4, 'E', 1],
      ['86CxyhFV9MI_1', join(videos, 'train-00001.mp4'), 5, 0, 'A', 2],
    ]);
    assert.deepEqual(items[0]!.category, { duration_group: '15', question_category: 'TOS' });
    assert.deepEqual(items[0]!.meta, { video_id: '86CxyhFV9MI', position: 2 });
  });

  it("reads LongVideoBench's Hugging Face rows: option0..option4 with 'N/A' unused", async () => {
    const { candidates: _, ...row } = LVB('x_0', 'train-00000.mp4', 1);
    const file = write('lvb_hf.json', [{ ...row, option0: 'red', option1: 'blue', option2: 'cyan', option3: 'N/A', option4: 'N/A' }]);
    const { items } = await readEvalBenchmark(file, { format: 'longvideobench' });
    assert.deepEqual([items[0]!.options, items[0]!.answerLetter], [['red', 'blue', 'cyan'], 'B']);
  });

  it("reads tpo's own benchmark with kind, type and length as categories, videos beside the file", async () => {
    const { format, items } = await readEvalBenchmark(tpoBenchmark);
    const lines = readFileSync(tpoBenchmark, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(format, 'tpo');
    assert.equal(items.length, lines.length);
    items.forEach((item, i) => {
      assert.deepEqual(item.category, { kind: lines[i].kind, type: lines[i].type, length: lines[i].length });
      assert.equal(item.answerLetter, lines[i].answer);
      assert.equal(item.videoPath, join(dir, 'world', lines[i].video));
    });
  });

  it('detects each format by its fields, and says what it expected when it cannot', async () => {
    assert.equal(detectFormat(VIDEOMME('v', 'q')), 'videomme');
    assert.equal(detectFormat(MLVU('v.mp4')), 'mlvu');
    assert.equal(detectFormat(LVB('a_0', 'v.mp4')), 'longvideobench');
    assert.equal(detectFormat({ id: 'x', video: 'v.mp4', question: 'q', options: ['a', 'b'], answer: 'A' }), 'tpo');
    assert.equal(detectFormat({ prompt: 'q' }), undefined);
    const file = write('unknown.jsonl', jsonl({ prompt: 'q', chosen: 'a', rejected: 'b' }));
    const error = await dataError(readEvalBenchmark(file));
    assert.match(error.message, new RegExp(`^${file}:1: cannot tell the benchmark format`));
    assert.match(error.message, /Video-MME/);
  });

  it('names the file, the index or line, and the field of a bad record', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['vm-answer.json', [VIDEOMME('a', 'q1'), VIDEOMME('b', 'q2', 'E')], /vm-answer\.json\[1\]: answer: 'E' is past the 4 options/],
      ['vm-letter.json', [VIDEOMME('a', 'q1', 'three')], /vm-letter\.json\[0\]: answer: must be a letter/],
      ['vm-prefix.json', [{ ...VIDEOMME('a', 'q1'), options: ['A. x', 'C. y'] }], /vm-prefix\.json\[0\]: options\.1: starts with 'C\.' but is option B/],
      ['mlvu.json', [MLVU('v.mp4'), MLVU('v.mp4'), MLVU('v.mp4', 'flies')], /mlvu\.json\[2\]: answer: 'flies' is not the text of any/],
      ['lvb.jsonl', jsonl(LVB('a_0', 'v.mp4'), LVB('a_1', 'v.mp4', 7)), /lvb\.jsonl:2: correct_choice: 7 is past the 5 candidates/],
      ['mlvu-loose.json', [MLVU('v.mp4'), { ...MLVU('v.mp4'), answer: 'Moves  Left.' }, MLVU('v.mp4', 'moves up')], /mlvu-loose\.json\[2\]: answer: 'moves up' is not the text of any of the 4 options/],
      ['lvb-many.jsonl', jsonl({ ...LVB('a_0', 'v.mp4'), candidates: Array.from({ length: 27 }, (_, i) => `c${i}`) }), /lvb-many\.jsonl:1: candidates: has 27 options; more than 26 cannot be lettered/],

      ['lvb-q.jsonl', jsonl({ ...LVB('a_0', 'v.mp4'), question: '' }), /lvb-q\.jsonl:1: question: must not be empty/],
      ['dup.json', [VIDEOMME('a', 'q1'), VIDEOMME('b', 'q1')], /dup\.json\[1\]: id: 'q1' is also the id at index 0/],
    ];
    for (const [name, content, expected] of cases) {
      const file = write(name, typeof content === 'string' ? content : JSON.stringify(content));
      const error = await dataError(readEvalBenchmark(file));
      assert.match(error.message, expected);
      assert.equal(error.file, file);
    }
    const wrongFormat = await dataError(readEvalBenchmark(write('as-mlvu.json', [VIDEOMME('a', 'q1')]), { format: 'mlvu' }));
    assert.match(wrongFormat.message, /as-mlvu\.json\[0\]: video: .*; candidates: .*; question_type: /);
  });
});
