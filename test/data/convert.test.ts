// tpo convert: TRL (JSONL and Parquet, conversational and standard), LLaMA-Factory, LLaVA, LLaVA-Hound and
// TimeWarp rows as tpo's records; errors name the file, the row and the field; the output reads back with readPairs
// / readSft and matches docs/schema/.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

import { convertDataset, convertRow } from '../../lib/data/convert.js';
import { readPairs, readSft } from '../../lib/data/records.js';
import { JSON_SCHEMAS, PairRecord } from '../../lib/data/schema.js';
import { FIXTURES, removeDir, ROOT, runNode, tempDir } from '../helpers.js';

const CONVERT = join(FIXTURES, 'convert');
const lines = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('tpo convert', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  it("TRL's conversational Parquet (messages with video parts, a videos column, two row groups)", async () => {
    const out = join(dir, 'out', 'pairs.jsonl');
    const summary = await convertDataset({ from: 'trl', input: join(CONVERT, 'trl-conversational.parquet'), output: out });
    assert.deepEqual(summary, { rows: 3, records: 3, kind: 'pair', output: out });
    const records = lines(out);
    assert.deepEqual(records[0], {
      id: 'row-0', video: relative(join(dir, 'out'), join(CONVERT, 'videos', 'a.mp4')),
      prompt: '<image>What happens first?', chosen: 'A red circle moves left.', rejected: 'A blue square grows.', source: 'synthetic',
    });
    assert.equal(records[1]!.prompt, 'How many events are there? <image>');
    assert.equal(records[1]!.system, 'Answer briefly.');
    assert.equal(records[2]!.video, '/data/videos/c.mp4', 'absolute paths stay');
    // Relative videos are rewritten for the output's folder: they resolve to the input's videos.
    const pairs = await readPairs(out).toArray();
    assert.equal(pairs[0]!.videoPath, join(CONVERT, 'videos', 'a.mp4'));
    for (const r of records) assert.ok(PairRecord.safeParse(r).success);
  });

  it("TRL's standard rows (zstd Parquet, int64 ids, <video> in the text) and JSONL", async () => {
    const out = join(dir, 'pairs.jsonl');
    await convertDataset({ from: 'trl', input: join(CONVERT, 'trl-standard.parquet'), output: out, videoRoot: '/videos' });
    const records = lines(out);
    assert.deepEqual(records.map((r) => [r.id, r.video, r.prompt, r.chosen_score]), [
      ['7', relative(dir, '/videos/v/1.mp4'), '<image>\nWhat moves?', 4.5], ['8', relative(dir, '/videos/v/2.mp4'), 'Describe the video.', 3],
    ]);
    // The implicit prompt: chosen and rejected as whole conversations sharing their first message.
    const input = join(dir, 'implicit.jsonl');
    writeFileSync(input, JSON.stringify({
      chosen: [{ role: 'user', content: '<video> Who wins?' }, { role: 'assistant', content: 'The circle.' }],
      rejected: [{ role: 'user', content: '<video> Who wins?' }, { role: 'assistant', content: 'The square.' }],
      videos: [{ path: 'clip.mp4' }],
    }) + '\n');
    await convertDataset({ from: 'trl', input, output: join(dir, 'implicit-out.jsonl') });
    const [r] = lines(join(dir, 'implicit-out.jsonl'));
    assert.deepEqual([r!.prompt, r!.chosen, r!.rejected, r!.video], ['<image> Who wins?', 'The circle.', 'The square.', 'clip.mp4']);
  });

  it("LLaMA-Factory's sharegpt ranking rows, both tag styles", async () => {
    const input = join(dir, 'lf.json');
    writeFileSync(input, JSON.stringify([
      {
        conversations: [{ from: 'human', value: '<video>What is the order?' }],
        chosen: { from: 'gpt', value: 'Red, then blue.' }, rejected: { from: 'gpt', value: 'Blue, then red.' },
        videos: ['mllm_demo_data/1.mp4'], system: 'Be exact.',
      },
      {
        messages: [{ role: 'user', content: 'Count the shapes. <video>' }],
        chosen: { role: 'assistant', content: 'Four.' }, rejected: { role: 'assistant', content: 'Two.' }, videos: ['2.mp4'],
      },
    ]));
    await convertDataset({ from: 'llamafactory', input, output: join(dir, 'out.jsonl') });
    const records = lines(join(dir, 'out.jsonl'));
    assert.deepEqual(records.map((r) => [r.prompt, r.chosen, r.rejected, r.video, r.system]), [
      ['<image>What is the order?', 'Red, then blue.', 'Blue, then red.', 'mllm_demo_data/1.mp4', 'Be exact.'],
      ['Count the shapes. <image>', 'Four.', 'Two.', '2.mp4', undefined],
    ]);
  });

  it("LLaVA's conversations: one SFT record per exchange", async () => {
    const input = join(dir, 'llava.json');
    writeFileSync(input, JSON.stringify([{
      id: 'v1', video: 'academic/v1.mp4', data_source: 'academic',
      conversations: [
        { from: 'human', value: '<image>\nWhat is the first event?' }, { from: 'gpt', value: 'A circle appears.' },
        { from: 'human', value: 'And the last?' }, { from: 'gpt', value: 'A square shrinks.' },
      ],
    }]));
    const summary = await convertDataset({ from: 'llava', input, output: join(dir, 'sft.jsonl') });
    assert.equal(summary.kind, 'sft');
    const records = await readSft(join(dir, 'sft.jsonl')).toArray();
    assert.deepEqual(records.map((r) => [r.id, r.prompt, r.answer, r.meta.turn, r.meta.data_source]), [
      ['v1-0', '<image>\nWhat is the first event?', 'A circle appears.', 0, 'academic'],
      ['v1-1', 'And the last?', 'A square shrinks.', 1, 'academic'],
    ]);
  });

  it("LLaVA-Hound's and TimeWarp's pair files", async () => {
    const hound = join(dir, 'hound.jsonl');
    writeFileSync(hound, JSON.stringify({
      id: 'h1', video: 'v.mp4', prompt: 'What?', answer: 'sft answer', chosen: 'good', rejected: 'bad', chosen_score: 5, rejected_score: 1,
    }) + '\n');
    await convertDataset({ from: 'llava-hound', input: hound, output: join(dir, 'h.jsonl') });
    assert.deepEqual(lines(join(dir, 'h.jsonl'))[0], {
      id: 'h1', video: 'v.mp4', prompt: 'What?', chosen: 'good', rejected: 'bad', chosen_score: 5, rejected_score: 1, answer: 'sft answer',
    });
    const timewarp = join(dir, 'tw.json');
    writeFileSync(timewarp, JSON.stringify([{ id: 'clip_3.mp4', question: 'Which came first?', answer: 'The cat.', rejected: 'The dog.' }]));
    await convertDataset({ from: 'timewarp', input: timewarp, output: join(dir, 't.jsonl') });
    assert.deepEqual(lines(join(dir, 't.jsonl'))[0], { id: 'clip_3.mp4', video: 'clip_3.mp4', prompt: 'Which came first?', chosen: 'The cat.', rejected: 'The dog.' });
  });

  it('errors name the file, the row and the field', async () => {
    const parquet = join(CONVERT, 'trl-missing-video.parquet');
    await assert.rejects(convertDataset({ from: 'trl', input: parquet, output: join(dir, 'x.jsonl') }),
      { code: 'ERR_TPO_DATA', message: `${parquet}[1]: videos: missing (a list of one video path)` });
    const src = { file: 'd.jsonl', line: 4 };
    const cases: [Parameters<typeof convertRow>, RegExp][] = [
      [['trl', { prompt: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }, { role: 'user', content: 'q2' }], chosen: 'x', rejected: 'y', videos: ['v.mp4'] }, src],
        /^d\.jsonl:4: prompt: has 3 turns \(user, assistant, user\)/],
      [['trl', { prompt: 'q', chosen: [{ role: 'user', content: 'x' }], rejected: 'y', videos: ['v.mp4'] }, src], /^d\.jsonl:4: chosen\.0\.role: 'user' is not an assistant turn/],
      [['trl', { prompt: 'q', chosen: 'x', rejected: 'y', images: ['i.png'] }, src], /^d\.jsonl:4: images: this row has images but no video/],
      [['trl', { prompt: 'q', chosen: 'x', rejected: 'y', videos: ['a.mp4', 'b.mp4'] }, src], /^d\.jsonl:4: videos: has 2 videos/],
      [['trl', { prompt: [{ role: 'user', content: [{ type: 'audio' }] }], chosen: 'x', rejected: 'y', videos: ['v'] }, src], /^d\.jsonl:4: prompt\.0\.content\.0\.type: 'audio' is not a part/],
      [['trl', { prompt: 'q', chosen: '  ', rejected: 'y', videos: ['v'] }, src], /^d\.jsonl:4: chosen: must not be empty/],
      [['llamafactory', { conversations: [{ from: 'human', value: 'q' }], chosen: { from: 'gpt' }, rejected: { from: 'gpt', value: 'n' }, videos: ['v'] }, src],
        /^d\.jsonl:4: chosen\.value: must be a string/],
      [['llava', { id: 'a', image: 'x.jpg', conversations: [] }, src], /^d\.jsonl:4: video: missing \(this is an image record/],
      [['llava', { id: 'a', video: 'v.mp4', conversations: [{ from: 'human', value: 'q' }] }, src], /^d\.jsonl:4: conversations\.0: has no gpt answer/],
      [['llava-hound', { id: 'a', video: 'v', chosen: 'x', rejected: 'y' }, src], /^d\.jsonl:4: prompt: missing/],
    ];
    for (const [args, message] of cases) assert.throws(() => convertRow(...args), { message }, JSON.stringify(args[1]));
    const dup = join(dir, 'dup.jsonl');
    writeFileSync(dup, [{ id: 'a', prompt: 'q', chosen: 'x', rejected: 'y', video: 'v' }, { id: 'a', prompt: 'q', chosen: 'x', rejected: 'z', video: 'v' }]
      .map((r) => JSON.stringify(r)).join('\n') + '\n');
    await assert.rejects(convertDataset({ from: 'trl', input: dup, output: join(dir, 'o.jsonl') }), /dup\.jsonl:2: id: 'a' is also the id of row 1/);
  });

  it('the command line', () => {
    const out = join(dir, 'cli.jsonl');
    const main = join(ROOT, 'dist', 'lib', 'cli', 'main.js');
    const ok = runNode(`process.argv = ['node', 'tpo', 'convert', '--from', 'trl', ${JSON.stringify(join(CONVERT, 'trl-standard.parquet'))}, ${JSON.stringify(out)}]; await import(${JSON.stringify(main)});`);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /cli\.jsonl: 2 preference pairs from 2 rows of /);
    const bad = runNode(`process.argv = ['node', 'tpo', 'convert', 'in.jsonl', 'out.jsonl']; await import(${JSON.stringify(main)});`);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /convert: --from FORMAT is required/);
  });
});

describe('docs/schema', () => {
  it('holds the JSON Schemas generated from the zod record schemas (node dist/scripts/json-schema.js)', () => {
    for (const [name, schema] of Object.entries(JSON_SCHEMAS)) {
      const committed = JSON.parse(readFileSync(join(ROOT, 'docs', 'schema', name), 'utf8')) as unknown;
      assert.deepEqual(committed, schema(), `docs/schema/${name} is out of date: run node dist/scripts/json-schema.js`);
    }
  });
});
