// native/video/reader.cc and encoder.cc at the sizes and pixel formats swscale's SIMD paths get wrong when written
// into tight buffers: tiny and odd frames, planar, packed, paletted, full-range and 10-bit formats, every file made
// by the ffmpeg command line. Each run decodes in a child process under glibc's malloc checks (MALLOC_CHECK_=3
// with libc_malloc_debug), so a heap overflow aborts the child instead of passing unnoticed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { removeDir, ROOT, runNode, tempDir } from '../helpers.js';

const SIZES: [number, number][] = [
  [1, 1], [2, 2], [3, 1], [1, 3], [5, 7], [6, 6], [7, 7], [9, 5], [13, 13], [16, 16], [17, 15], [24, 24], [31, 33], [40, 40],
];
// rawvideo in NUT holds any pixel format at any size; the real codecs add their own decoders' buffers.
const RAW_FORMATS = ['yuv420p', 'yuv422p', 'yuv444p', 'rgb24', 'bgr0', 'rgba', 'gray', 'pal8', 'yuvj420p', 'yuv420p10le', 'nv12'];
const CODECS: { name: string; ext: string; args: string[] }[] = [
  { name: 'mpeg4', ext: 'avi', args: ['-c:v', 'mpeg4', '-pix_fmt', 'yuv420p'] },
  { name: 'mjpeg', ext: 'avi', args: ['-c:v', 'mjpeg', '-pix_fmt', 'yuvj422p'] },
  { name: 'ffv1', ext: 'mkv', args: ['-c:v', 'ffv1', '-pix_fmt', 'yuv444p10le'] },
  { name: 'png', ext: 'mkv', args: ['-c:v', 'png', '-pix_fmt', 'pal8'] },
];
// testsrc2 itself rounds sizes to even numbers: every size here is made by scaling it.
const PATTERN = 'testsrc2=size=48x48:rate=4:duration=1';
const MALLOC_DEBUG = '/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0';

function ffmpeg(args: string[]): Buffer {
  return execFileSync('ffmpeg', ['-v', 'error', '-nostdin', '-y', ...args], { maxBuffer: 1 << 26 });
}

/** One ffmpeg run writes the test pattern at every size: `-vf scale` per output. */
function makeAll(dir: string, tag: string, codecArgs: string[], ext: string): string[] {
  const args = ['-f', 'lavfi', '-i', PATTERN];
  const files: string[] = [];
  for (const [w, h] of SIZES) {
    const file = join(dir, `${tag}-${w}x${h}.${ext}`);
    args.push('-vf', `scale=${w}:${h}:flags=bilinear`, ...codecArgs, file);
    files.push(file);
  }
  ffmpeg(args);
  return files;
}

/** Decodes (and encodes) in a child under malloc checks; returns what the child printed. */
function runChecked(jobs: unknown) {
  const env: NodeJS.ProcessEnv = { ...process.env, MALLOC_CHECK_: '3', MALLOC_PERTURB_: '165' };
  if (existsSync(MALLOC_DEBUG)) env.LD_PRELOAD = MALLOC_DEBUG;
  const code = `
    import { decodeVideo, probeVideo, encodeVideo } from ${JSON.stringify(join(ROOT, 'dist/lib/index.js'))};
    const jobs = ${JSON.stringify(jobs)};
    const out = [];
    for (const job of jobs) {
      try {
        if (job.encode) {
          const { tensor } = await import(${JSON.stringify(join(ROOT, "dist/lib/tensor.js"))});
          const [t, h, w] = job.encode;
          const data = new Uint8Array(t * h * w * 3).map((_, i) => (i * 37) % 251);
          const frames = tensor(data, [t, h, w, 3]);
          await encodeVideo(frames, job.path, { fps: 4, codec: 'mpeg4' });
        }
        const info = await probeVideo(job.path);
        const results = [];
        for (const size of job.sizes) {
          const d = await decodeVideo(job.path, job.plan ?? { kind: 'uniform', frames: 3 }, size);
          results.push({ shape: d.frames.shape, sum: (d.frames.toTypedArray()).reduce((a, b) => a + b, 0) });
          d.frames.dispose();
        }
        out.push({ path: job.path, width: info.width, height: info.height, results });
      } catch (e) {
        out.push({ path: job.path, error: e.message });
      }
    }
    console.log(JSON.stringify(out));
  `;
  const r = runNode(code, { env, timeout: 300_000, maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, `the child died (status ${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    path: string; width?: number; height?: number; error?: string; results?: { shape: number[]; sum: number }[];
  }[];
}

// Output sizes asked of every video: its own, tiny, odd up-scales, one side given.
const OUTPUT_SIZES = [{}, { width: 1, height: 1 }, { width: 3, height: 5 }, { width: 41, height: 37 }, { width: 7 }];

function expectedShape(w: number, h: number, size: { width?: number; height?: number }): number[] {
  if (size.width && size.height) return [3, size.height, size.width, 3];
  if (size.width) return [3, Math.max(1, Math.round((size.width * h) / w)), size.width, 3];
  return [3, h, w, 3];
}

describe('video decoding: small frames and odd pixel formats', function () {
  this.timeout(600_000);
  let dir: string;
  before(() => {
    dir = tempDir('tpo-small-frames-');
  });
  after(() => removeDir(dir));

  it('decodes 1x1 .. 40x40 frames in every pixel format without touching memory outside its buffers', () => {
    const files: string[] = [];
    for (const format of RAW_FORMATS) files.push(...makeAll(dir, `raw-${format}`, ['-c:v', 'rawvideo', '-pix_fmt', format], 'nut'));
    for (const c of CODECS) files.push(...makeAll(dir, c.name, c.args, c.ext));
    const results = runChecked(files.map((path) => ({ path, sizes: OUTPUT_SIZES })));
    assert.equal(results.length, files.length);
    for (const r of results) {
      assert.equal(r.error, undefined, `${r.path}: ${r.error}`);
      const [w, h] = r.path.match(/-(\d+)x(\d+)\./)!.slice(1).map(Number) as [number, number];
      assert.deepEqual([r.width, r.height], [w, h], r.path);
      r.results!.forEach((d, i) => assert.deepEqual(d.shape, expectedShape(w, h, OUTPUT_SIZES[i]!), `${r.path} at ${JSON.stringify(OUTPUT_SIZES[i])}`));
    }
  });

  it('gives the exact pixels of an rgb24 video at its own size', () => {
    const [w, h] = [7, 5];
    const file = join(dir, `exact-${w}x${h}.nut`);
    ffmpeg(['-f', 'lavfi', '-i', PATTERN, '-vf', `scale=${w}:${h}`, '-c:v', 'rawvideo', '-pix_fmt', 'rgb24', file]);
    const raw = ffmpeg(['-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-']);
    const frameBytes = w * h * 3;
    const frames = raw.length / frameBytes;
    const expected = [0, 2, frames - 1].reduce((sum, f) => sum + raw.subarray(f * frameBytes, (f + 1) * frameBytes).reduce((a, b) => a + b, 0), 0);
    const [result] = runChecked([{ path: file, sizes: [{}], plan: { kind: 'indices', indices: [0, 2, frames - 1] } }]);
    assert.equal(result!.error, undefined, result!.error);
    assert.equal(result!.results![0]!.sum, expected);
  });

  it('decodes frame folders of tiny paletted and grey PNG images', () => {
    const folders: string[] = [];
    for (const [format, [w, h]] of [['pal8', [3, 3]], ['gray', [1, 5]], ['rgba', [9, 2]]] as const) {
      const folder = join(dir, `frames-${format}-${w}x${h}`);
      mkdirSync(folder);
      ffmpeg(['-f', 'lavfi', '-i', PATTERN, '-vf', `scale=${w}:${h}`, '-pix_fmt', format, join(folder, '%04d.png')]);
      folders.push(folder);
    }
    const results = runChecked(folders.map((path) => ({ path, sizes: OUTPUT_SIZES })));
    for (const r of results) {
      assert.equal(r.error, undefined, `${r.path}: ${r.error}`);
      const [w, h] = r.path.match(/-(\d+)x(\d+)$/)!.slice(1).map(Number) as [number, number];
      r.results!.forEach((d, i) => assert.deepEqual(d.shape, expectedShape(w, h, OUTPUT_SIZES[i]!), r.path));
    }
  });

  it('encodes the smallest even frames and reads them back', () => {
    const jobs = [[2, 2, 2], [3, 2, 4], [2, 6, 2], [2, 10, 14]].map(([t, h, w]) => ({
      encode: [t, h, w], path: join(dir, `encoded-${w}x${h}.avi`), sizes: [{}],
    }));
    const results = runChecked(jobs);
    for (const r of results) {
      assert.equal(r.error, undefined, `${r.path}: ${r.error}`);
      const [w, h] = r.path.match(/-(\d+)x(\d+)\./)!.slice(1).map(Number) as [number, number];
      assert.deepEqual(r.results![0]!.shape, [3, h, w, 3]);
    }
  });

  it('reports a tiny file cut short as an error naming it, not a crash', () => {
    const file = join(dir, 'not-a-video.nut');
    writeFileSync(file, readFileSync(join(dir, 'raw-rgb24-1x1.nut')).subarray(0, 40));
    const [r] = runChecked([{ path: file, sizes: [{}] }]);
    assert.match(r!.error ?? '', /not-a-video\.nut/);
  });
});
