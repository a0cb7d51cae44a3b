// native/video/reader.cc, sampling.cc and lib/video/decode.ts: real files made by the ffmpeg command line, read
// back and compared with what the ffmpeg command line itself decodes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { decodeVideo, probeVideo } from '../../lib/video/index.js';
import { removeDir, tempDir } from '../helpers.js';

const W = 160;
const H = 90;
const FPS = 30;
const SECONDS = 10;

function ffmpeg(args: string[]): Buffer {
  return execFileSync('ffmpeg', ['-v', 'error', '-nostdin', '-y', ...args], { maxBuffer: 1 << 28 });
}

/** A 10 s, 30 fps test pattern (moving, so every frame differs) in a given container and codec. */
function makeVideo(path: string, codecArgs: string[]): void {
  ffmpeg(['-f', 'lavfi', '-i', `testsrc2=size=${W}x${H}:rate=${FPS}:duration=${SECONDS}`, ...codecArgs, path]);
}

/** What `ffmpeg -ss T -i path -frames:v 1` writes, as packed RGB. */
function ffmpegFrameAt(path: string, seconds: number, scale?: [number, number]): Buffer {
  const filter = scale ? ['-vf', `scale=${scale[0]}:${scale[1]}:flags=bicubic`] : [];
  return ffmpeg(['-ss', String(seconds), '-i', path, '-frames:v', '1', ...filter, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-']);
}

function frameBytes(frames: Uint8Array, i: number, size: number): Uint8Array {
  return frames.subarray(i * size, (i + 1) * size);
}

function maxAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

describe('video decoding', function () {
  this.timeout(120_000);
  let dir: string;
  const files: Record<string, string> = {};

  before(() => {
    dir = tempDir('tpo-video-');
    const containers: [string, string[]][] = [
      ['h264.mp4', ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-g', '30', '-bf', '2']],
      ['h264.mkv', ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-g', '45']],
      ['vp9.webm', ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-g', '60', '-b:v', '200k']],
      ['mpeg4.avi', ['-c:v', 'mpeg4', '-q:v', '5', '-g', '25']],
    ];
    for (const [name, args] of containers) {
      files[name] = join(dir, name);
      makeVideo(files[name]!, args);
    }
  });
  after(() => removeDir(dir));

  describe('probe', () => {
    it('reads metadata: duration, fps, frame count, size, codec', async () => {
      const info = await probeVideo(files['h264.mp4']!);
      assert.equal(info.codec, 'h264');
      assert.equal(info.pixelFormat, 'yuv420p');
      assert.deepEqual([info.width, info.height, info.fps, info.frameCount, info.frameCountExact], [W, H, FPS, 300, true]);
      assert.ok(Math.abs(info.duration - SECONDS) < 0.05, `duration ${info.duration}`);
    });

    it('estimates the frame count when the container has none, and counts it when asked', async () => {
      const estimated = await probeVideo(files['h264.mkv']!);
      assert.equal(estimated.frameCountExact, false);
      assert.ok(Math.abs(estimated.frameCount - 300) <= 1, `estimated ${estimated.frameCount}`);
      const counted = await probeVideo(files['h264.mkv']!, { countFrames: true });
      assert.deepEqual([counted.frameCount, counted.frameCountExact], [300, true]);
    });
  });

  describe('matches the ffmpeg command line frame for frame', () => {
    const times = [0, 0.5, 1, 2.01, 3.3333, 5, 7.2, 9.95];
    for (const name of ['h264.mp4', 'h264.mkv', 'vp9.webm', 'mpeg4.avi']) {
      it(`${name}: frames at given timestamps equal \`ffmpeg -ss T -frames:v 1\` (tolerance 0)`, async () => {
        const path = files[name]!;
        const { frames, timestamps } = await decodeVideo(path, { kind: 'timestamps', timestamps: times });
        assert.deepEqual(frames.shape, [times.length, H, W, 3]);
        const all = frames.toTypedArray();
        times.forEach((t, i) => {
          // At or after t, as t rounds in the stream's time base (ffmpeg's rule): never half a frame before.
          assert.ok(timestamps[i]! > t - 0.5 / FPS, `frame ${i} at ${timestamps[i]} is before ${t}`);
          assert.equal(maxAbsDiff(frameBytes(all, i, W * H * 3), ffmpegFrameAt(path, t)), 0, `${name} at ${t} s`);
        });
      });
    }

    it('scales with swscale as `-vf scale=W:H:flags=bicubic` does (tolerance 0)', async () => {
      const path = files['h264.mp4']!;
      const { frames } = await decodeVideo(path, { kind: 'timestamps', timestamps: [4] }, { width: 64, height: 48 });
      assert.deepEqual(frames.shape, [1, 48, 64, 3]);
      assert.equal(maxAbsDiff(frames.toTypedArray(), ffmpegFrameAt(path, 4, [64, 48])), 0);
    });

    it('keeps the aspect ratio when given one side', async () => {
      const { frames } = await decodeVideo(files['h264.mp4']!, { kind: 'uniform', frames: 2 }, { width: 64 });
      assert.deepEqual(frames.shape, [2, 36, 64, 3]);
    });

    it('gives the same frames whether it seeks or decodes through', async () => {
      const plan = { kind: 'uniform', frames: 7 } as const;
      const seeking = await decodeVideo(files['h264.mp4']!, plan, { seekThreshold: 0 });
      const through = await decodeVideo(files['h264.mp4']!, plan, { seekThreshold: 1e9 });
      assert.deepEqual(seeking.indices, through.indices);
      assert.ok(Buffer.from(seeking.frames.toTypedArray()).equals(Buffer.from(through.frames.toTypedArray())));
    });
  });

  describe('sampling plans', () => {
    const mp4 = () => files['h264.mp4']!;
    it('uniform: np.linspace(0, n - 1, frames, dtype=int), as TPO and LLaVA-Video sample', async () => {
      assert.deepEqual((await decodeVideo(mp4(), { kind: 'uniform', frames: 8 })).indices, [0, 42, 85, 128, 170, 213, 256, 299]);
      assert.deepEqual((await decodeVideo(mp4(), { kind: 'uniform', frames: 1 })).indices, [0]);
      // More frames than the video has: frames repeat, as linspace's do.
      const many = await decodeVideo(mp4(), { kind: 'uniform', frames: 400 }, { width: 16 });
      assert.equal(many.indices.length, 400);
      assert.equal(many.indices.at(-1), 299);
    });

    it("fps: every round(30 / fps)-th frame, and frames_upbound uniformly (LLaVA-Video's load_video)", async () => {
      const oneFps = await decodeVideo(mp4(), { kind: 'fps', fps: 1 });
      assert.deepEqual(oneFps.indices, [0, 30, 60, 90, 120, 150, 180, 210, 240, 270]);
      const bounded = await decodeVideo(mp4(), { kind: 'fps', fps: 1, maxFrames: 4 });
      assert.deepEqual(bounded.indices, [0, 99, 199, 299]);
    });

    it('range keeps a segment, exclude removes one (TPO localized manipulations)', async () => {
      const inside = await decodeVideo(mp4(), { kind: 'uniform', frames: 4, range: [2, 4] });
      assert.deepEqual(inside.indices, [60, 79, 99, 119]);
      const removed = await decodeVideo(mp4(), { kind: 'uniform', frames: 4, exclude: [[2, 8]] });
      assert.deepEqual(removed.indices, [0, 39, 259, 299]);
      assert.ok(removed.indices.every((i) => i / FPS < 2 || i / FPS >= 8));
    });

    it('indices: the frame at each index, in the order asked', async () => {
      const byIndex = await decodeVideo(mp4(), { kind: 'indices', indices: [150, 3, 299] });
      assert.deepEqual(byIndex.indices, [150, 3, 299]);
      const byTime = await decodeVideo(mp4(), { kind: 'timestamps', timestamps: [5, 0.1, 299 / 30] });
      assert.ok(Buffer.from(byIndex.frames.toTypedArray()).equals(Buffer.from(byTime.frames.toTypedArray())));
    });

    it('refuses plans that select nothing, naming the problem', async () => {
      await assert.rejects(decodeVideo(mp4(), { kind: 'uniform', frames: 4, range: [20, 30] }), /no frame lies inside the requested range/);
      await assert.rejects(decodeVideo(mp4(), { kind: 'indices', indices: [300] }), /frame index 300 is past the last frame \(299\)/);
      await assert.rejects(decodeVideo(mp4(), { kind: 'uniform', frames: 0 }), { code: 'ERR_TPO_ARGUMENT', message: /decodeVideo: plan: frames/ });
      await assert.rejects(decodeVideo(mp4(), { kind: 'uniform', frames: 2, range: [5, 1] }), { code: 'ERR_TPO_ARGUMENT', message: /start <= end/ });
    });
  });

  describe('frame folders', () => {
    it('reads numbered frames as a video at a given rate, matching the images', async () => {
      const folder = join(dir, 'frames');
      mkdirSync(folder);
      ffmpeg(['-i', files['h264.mp4']!, '-vf', 'fps=2', join(folder, 'c01_%04d.png')]);
      const info = await probeVideo(folder, { folderFps: 2 });
      assert.deepEqual([info.isFrameFolder, info.frameCount, info.fps, info.width, info.height], [true, 20, 2, W, H]);
      const { frames, indices, timestamps } = await decodeVideo(folder, { kind: 'uniform', frames: 3 }, { folderFps: 2 });
      assert.deepEqual(indices, [0, 9, 19]);
      assert.deepEqual(Array.from(timestamps), [0, 4.5, 9.5]);
      const tenth = ffmpeg(['-i', join(folder, 'c01_0010.png'), '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-']);
      assert.equal(maxAbsDiff(frameBytes(frames.toTypedArray(), 1, W * H * 3), tenth), 0);
    });

    it('refuses a folder with gaps, naming the missing frames', async () => {
      const folder = join(dir, 'gappy');
      mkdirSync(folder);
      ffmpeg(['-i', files['h264.mp4']!, '-vf', 'fps=1', '-q:v', '3', join(folder, '%03d.jpg')]);
      rmSync(join(folder, '004.jpg'));
      rmSync(join(folder, '007.jpg'));
      await assert.rejects(decodeVideo(folder, { kind: 'uniform', frames: 2 }), (e: Error) => {
        assert.match(e.message, new RegExp(`${folder}: frame numbers 1 to 10 have 2 gap\\(s\\): missing 4, 7`));
        return true;
      });
      const empty = join(dir, 'empty');
      mkdirSync(empty);
      await assert.rejects(probeVideo(empty), /holds no numbered \.jpg\/\.jpeg\/\.png frames/);
    });
  });

  describe('bad input is an Error naming the file, never a crash or a hang', () => {
    const expectError = async (path: string, pattern: RegExp) => {
      for (const call of [() => probeVideo(path), () => decodeVideo(path, { kind: 'uniform', frames: 4 })]) {
        await assert.rejects(call(), (e: Error) => {
          assert.ok(e.message.includes(path), `names the file: ${e.message}`);
          assert.match(e.message, pattern);
          return true;
        });
      }
    };

    it('a missing file', () => expectError(join(dir, 'nope.mp4'), /no such file/));

    it('an empty file', () => {
      writeFileSync(join(dir, 'empty.mp4'), '');
      return expectError(join(dir, 'empty.mp4'), /is empty \(0 bytes\)/);
    });

    it('a file that is not a video', () => {
      writeFileSync(join(dir, 'notes.mp4'), 'these are not the frames you are looking for\n'.repeat(100));
      return expectError(join(dir, 'notes.mp4'), /cannot open as a video: Invalid data found/);
    });

    it('a video with zero frames', () => {
      const path = join(dir, 'zero-frames.mp4');
      ffmpeg(['-f', 'lavfi', '-i', `testsrc2=size=${W}x${H}:rate=${FPS}`, '-frames:v', '0', '-c:v', 'libx264', path]);
      return expectError(path, /has no video stream|contains no video frames/);
    });

    it('a file with sound and no video', () => {
      const path = join(dir, 'tone.m4a');
      ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=440:duration=1', '-c:a', 'aac', path]);
      return expectError(path, /has no video stream/);
    });

    it('a codec this FFmpeg cannot decode', () => {
      // A Matroska file whose codec id is rewritten to one no decoder knows.
      const bytes = readFileSync(files['h264.mkv']!);
      const id = Buffer.from('V_MPEG4/ISO/AVC');
      const at = bytes.indexOf(id);
      assert.ok(at > 0);
      Buffer.from('V_TPO/NO/SUCH/C').copy(bytes, at);
      const path = join(dir, 'alien.mkv');
      writeFileSync(path, bytes);
      return expectError(path, /no decoder for its video codec|has no video stream/);
    });

    it('a truncated file without its index', () => {
      const bytes = readFileSync(files['h264.mp4']!);
      const path = join(dir, 'truncated.mp4');
      writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
      return expectError(path, /cannot (open as a video|read its streams)|no decodable|no frames/);
    });

    it('a truncated file with its index first: decodes what is there, later frames repeat the last one', async () => {
      const path = join(dir, 'faststart.mp4');
      makeVideo(path, ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-g', '30', '-movflags', '+faststart']);
      const bytes = readFileSync(path);
      const cut = join(dir, 'faststart-cut.mp4');
      writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
      const { indices, frames } = await decodeVideo(cut, { kind: 'uniform', frames: 5 }, { width: 16 });
      assert.equal(frames.shape[0], 5);
      assert.ok(indices.at(-1)! < 299, `the last frame decoded is ${indices.at(-1)}`);
    });

    it('truncations and byte flips anywhere: a result or an Error, within the time limit', async function () {
      this.timeout(300_000);
      const source = readFileSync(files['h264.mp4']!);
      let seed = 12345;
      const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      const outcomes = { decoded: 0, rejected: 0 };
      for (let trial = 0; trial < 40; trial++) {
        const bytes = Buffer.from(trial % 2 === 0 ? source.subarray(0, Math.floor(random() * source.length)) : source);
        const flips = trial % 2 === 0 ? 0 : 1 + Math.floor(random() * 64);
        for (let f = 0; f < flips; f++) bytes[Math.floor(random() * bytes.length)] ^= 1 << Math.floor(random() * 8);
        const path = join(dir, `damaged-${trial}.mp4`);
        writeFileSync(path, bytes);
        try {
          const { frames } = await decodeVideo(path, { kind: 'uniform', frames: 6 }, { width: 32, timeout: 30 });
          assert.equal(frames.shape[0], 6);
          outcomes.decoded++;
        } catch (error) {
          assert.ok(error instanceof Error && error.message.includes(path), String(error));
          outcomes.rejected++;
        }
        rmSync(path);
      }
      assert.equal(outcomes.decoded + outcomes.rejected, 40);
    });
  });
});
