// lib/data/videos.ts: every missing video reported up front, grouping by video, seeded shuffles and batches.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { MissingVideosError } from '../../lib/data/errors.js';
import { readPairs } from '../../lib/data/records.js';
import {
  assertVideosExist, findMissingVideos, groupByVideo, mulberry32, seededShuffle, videoBatches,
} from '../../lib/data/videos.js';
import { removeDir, tempDir } from '../helpers.js';

const rec = (id: string, video: string) => ({ id, video, videoPath: `/v/${video}` });

describe('dataset videos', () => {
  describe('missing videos', () => {
    let dir: string;
    beforeEach(() => {
      dir = tempDir();
    });
    afterEach(() => removeDir(dir));

    it('are all reported, once each, with how many records use them and the first one', async () => {
      writeFileSync(join(dir, 'here.mp4'), '');
      mkdirSync(join(dir, 'frames_dir')); // LLaVA-Hound's videos are folders of frames
      const lines = [
        { video: 'here.mp4' }, { video: 'gone1.mp4' }, { video: 'frames_dir' }, { video: 'gone2.mp4' }, { video: 'gone1.mp4' },
      ].map((r, i) => JSON.stringify({ id: `r${i}`, prompt: 'q', chosen: 'a', rejected: 'b', ...r }));
      const file = join(dir, 'pairs.jsonl');
      writeFileSync(file, lines.join('\n') + '\n');

      const missing = await findMissingVideos(readPairs(file));
      assert.deepEqual(missing, [
        { path: join(dir, 'gone1.mp4'), video: 'gone1.mp4', records: 2, firstSource: { file, line: 2 } },
        { path: join(dir, 'gone2.mp4'), video: 'gone2.mp4', records: 1, firstSource: { file, line: 4 } },
      ]);
      await assert.rejects(assertVideosExist(readPairs(file)), (e: unknown) => {
        assert.ok(e instanceof MissingVideosError);
        assert.equal(e.code, 'ERR_TPO_MISSING_VIDEOS');
        assert.deepEqual(e.missing, missing);
        assert.equal(e.message, [
          '2 videos are missing:',
          `  ${join(dir, 'gone1.mp4')} (2 records, first at ${file}:2)`,
          `  ${join(dir, 'gone2.mp4')} (1 record, first at ${file}:4)`,
        ].join('\n'));
        return true;
      });
      await assertVideosExist([{ video: 'here.mp4', videoPath: join(dir, 'here.mp4') }]);
    });

    it('a long list keeps every path on the error, and the message lists the first 50', async () => {
      const records = Array.from({ length: 70 }, (_, i) => ({ video: `m${i}.mp4`, videoPath: join(dir, `m${i}.mp4`), source: { file: 'x.jsonl', line: i + 1 } }));
      const error = await assertVideosExist(records).then(() => null, (e: MissingVideosError) => e);
      assert.equal(error!.missing.length, 70);
      assert.equal(error!.message.split('\n').length, 1 + 50 + 1);
      assert.match(error!.message, /^70 videos are missing:\n/);
      assert.match(error!.message, /… and 20 more \(error\.missing lists all\)$/);
    });
  });

  describe('grouping', () => {
    it('groups records by video in order of first appearance', () => {
      const groups = groupByVideo([rec('1', 'a'), rec('2', 'b'), rec('3', 'a'), rec('4', 'c'), rec('5', 'b')]);
      assert.deepEqual(groups.map((g) => [g.videoPath, g.records.map((r) => r.id)]), [
        ['/v/a', ['1', '3']], ['/v/b', ['2', '5']], ['/v/c', ['4']],
      ]);
    });
  });

  describe('seeded shuffle', () => {
    it('mulberry32 gives the reference generator\'s numbers', () => {
      // From the C reference (uint32 arithmetic), computed independently in Python.
      const r = mulberry32(42);
      assert.deepEqual([r(), r(), r(), r()], [0.6011037519201636, 0.44829055899754167, 0.8524657934904099, 0.6697340414393693]);
      const z = mulberry32(0);
      assert.deepEqual([z(), z()], [0.26642920868471265, 0.0003297457005828619]);
      assert.throws(() => mulberry32(-1), /mulberry32: seed/);
      assert.throws(() => mulberry32(1.5), /mulberry32: seed/);
    });

    it('is a permutation that depends only on the seed', () => {
      const items = Array.from({ length: 50 }, (_, i) => i);
      const a = seededShuffle(items, 7);
      assert.deepEqual(seededShuffle(items, 7), a);
      assert.notDeepEqual(seededShuffle(items, 8), a);
      assert.notDeepEqual(a, items);
      assert.deepEqual([...a].sort((x, y) => x - y), items);
      assert.deepEqual(items, Array.from({ length: 50 }, (_, i) => i)); // the input is left alone
      assert.deepEqual(seededShuffle([], 1), []);
    });
  });

  describe('batches', () => {
    // 40 records over 12 videos, unevenly.
    const records = Array.from({ length: 40 }, (_, i) => rec(`r${i}`, `v${(i * 7) % 12}`));

    it('hold every record once, in batches of batchSize, with each video\'s records together', () => {
      const batches = videoBatches(records, { batchSize: 8, seed: 3 });
      assert.deepEqual(batches.map((b) => b.records.length), [8, 8, 8, 8, 8]);
      assert.deepEqual(batches.map((b) => b.index), [0, 1, 2, 3, 4]);
      const order = batches.flatMap((b) => b.records);
      assert.deepEqual(order.map((r) => r.id).sort(), records.map((r) => r.id).sort());
      // In the whole order, a video's records form one run.
      const runs = order.map((r) => r.videoPath).filter((v, i, all) => v !== all[i - 1]);
      assert.equal(runs.length, new Set(runs).size);
      // Each batch lists its records by video: one decode per video per batch.
      for (const b of batches) {
        assert.equal(b.groups.reduce((n, g) => n + g.records.length, 0), b.records.length);
        assert.equal(new Set(b.groups.map((g) => g.videoPath)).size, b.groups.length);
      }
    });

    it('are the same for the same seed and epoch, and differ across seeds and epochs', () => {
      const ids = (o: { seed: number; epoch?: number }) => videoBatches(records, { batchSize: 8, ...o }).flatMap((b) => b.records.map((r) => r.id));
      assert.deepEqual(ids({ seed: 3 }), ids({ seed: 3 }));
      assert.deepEqual(ids({ seed: 3, epoch: 2 }), ids({ seed: 3, epoch: 2 }));
      assert.notDeepEqual(ids({ seed: 3 }), ids({ seed: 4 }));
      assert.notDeepEqual(ids({ seed: 3, epoch: 0 }), ids({ seed: 3, epoch: 1 }));
    });

    it('without shuffling keep videos in first-appearance order; dropLast drops a short last batch', () => {
      const plain = videoBatches(records, { batchSize: 16, shuffle: false });
      assert.deepEqual(plain.flatMap((b) => b.records), groupByVideo(records).flatMap((g) => g.records));
      assert.deepEqual(plain.map((b) => b.records.length), [16, 16, 8]);
      assert.deepEqual(videoBatches(records, { batchSize: 16, dropLast: true }).map((b) => b.records.length), [16, 16]);
      assert.throws(() => videoBatches(records, { batchSize: 0 }), /videoBatches: options: batchSize/);
    });
  });
});
