// lib/paths.ts and its users: a FIFO, a device or a path under /proc is an error naming the path before anything
// opens it (a FIFO opened for reading blocks a thread for good; Node's recursive mkdir spins on procfs).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { readConfigFile } from '../lib/cli/overrides.js';
import { findMissingVideos } from '../lib/data/videos.js';
import { JsonlAppender, writeJsonl, writeTextFile } from '../lib/data/jsonl.js';
import { readPairs } from '../lib/data/records.js';
import { readSafetensors } from '../lib/model/safetensors.js';
import { Tokenizer } from '../lib/model/tokenizer.js';
import { VideoLM } from '../lib/model/video-lm.js';
import { checkInputFile, PathError, prepareOutputDir, prepareOutputFile, prepareWritableDir } from '../lib/paths.js';
import { decodeVideo, probeVideo } from '../lib/video/decode.js';
import { FIXTURES, removeDir, tempDir } from './helpers.js';

const FIFO = /is a FIFO \(named pipe\)/;

describe('paths checked before they are opened', () => {
  let dir: string;
  let fifo: string;
  before(() => {
    dir = tempDir();
    fifo = join(dir, 'pipe');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  });
  after(() => removeDir(dir));

  it('a FIFO as a dataset, config, tokenizer, checkpoint or video is an error naming it, not a hang', async () => {
    await assert.rejects(readPairs(fifo).toArray(), (e: Error) => e.message.startsWith(`${fifo}: `) && FIFO.test(e.message));
    await assert.rejects(readConfigFile(fifo), (e: Error) => e.message.startsWith(`${fifo}: `) && FIFO.test(e.message));
    await assert.rejects(readSafetensors(fifo), FIFO);
    await assert.rejects(probeVideo(fifo), FIFO);
    await assert.rejects(decodeVideo(fifo, { kind: 'uniform', frames: 2 }), FIFO);
    const missing = await findMissingVideos([{ video: 'pipe', videoPath: fifo }]);
    assert.equal(missing[0]?.problem, 'a FIFO (named pipe), not a video file');

    // Inside folders: a model folder whose weights, or a tokenizer folder whose tokenizer.json, is a FIFO.
    const model = join(dir, 'model');
    mkdirSync(model);
    writeFileSync(join(model, 'config.json'), '{}');
    spawnSync('mkfifo', [join(model, 'model.safetensors')]);
    await assert.rejects(VideoLM.load(model), (e: Error) => e.message.includes(join(model, 'model.safetensors')) && FIFO.test(e.message));
    const tokenizer = join(dir, 'tokenizer');
    mkdirSync(tokenizer);
    spawnSync('mkfifo', [join(tokenizer, 'tokenizer.json')]);
    await assert.rejects(Tokenizer.load(tokenizer), FIFO);
  });

  it('a FIFO or a folder as an output file is an error; so is appending to a FIFO', async () => {
    await assert.rejects(writeJsonl(fifo, [{ a: 1 }]), FIFO);
    await assert.rejects(JsonlAppender.open(fifo), FIFO);
    await assert.rejects(writeTextFile(dir, 'x'), /is a folder, not a file/);
    assert.throws(() => prepareOutputFile(join(FIXTURES, 'hf', 'qwen2', 'config.json', 'x.json')), /is not a folder/);
  });

  it('a character device as an input is an error', async () => {
    assert.throws(() => checkInputFile('/dev/zero'), /is a character device, not a regular file/);
    await assert.rejects(readPairs('/dev/zero').toArray(), /\/dev\/zero: cannot read: is a character device/);
  });

  it('outputs under /proc or /sys are errors at once (recursive mkdir on procfs spins forever)', async () => {
    assert.throws(() => prepareOutputDir('/proc/tpo-test/run/checkpoints'), (e: unknown) => {
      assert.ok(e instanceof PathError);
      assert.equal(e.code, 'ERR_TPO_PATH');
      assert.match(e.message, /^\/proc\/tpo-test\/run\/checkpoints: is on procfs, a kernel file system/);
      return true;
    });
    assert.throws(() => prepareOutputDir('/sys/tpo-test'), /is on sysfs/);
    await assert.rejects(writeJsonl('/proc/self/tpo.jsonl', [1]), /is on procfs/);
    await assert.rejects(VideoLM.load('/proc/self'), /is on procfs/);
  });

  it('prepareWritableDir creates the folder and proves it takes files', () => {
    const out = join(dir, 'a', 'b', 'c');
    prepareWritableDir(out);
    assert.throws(() => prepareWritableDir(join(dir, 'pipe', 'x')), /pipe is a FIFO/);
  });
});
