// `tpo bench video`: 32 frames sampled uniformly from a 10-minute 640x360 H.264 video, by tpo (one native call,
// seeking to keyframes) vs the ffmpeg command line decoding everything and selecting the same frames.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { cacheDir } from '../libtorch.js';
import { decodeVideo } from '../video/decode.js';
import type { BenchRow } from './bench.js';

const FRAMES = 32;

/** The benchmark video, made once with the ffmpeg CLI (testsrc2, libx264 veryfast, 30 fps, x264's default GOP). */
export function benchVideo(): string {
  const dir = join(cacheDir(), 'bench');
  const path = join(dir, 'ten-minutes-640x360.mp4');
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  const tmp = `${path}.tmp.mp4`;
  const r = spawnSync('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i',
    'testsrc2=size=640x360:rate=30:duration=600', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', tmp],
  { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('bench video: the ffmpeg command line is needed to make it (apt-get install ffmpeg)');
  spawnSync('mv', [tmp, path]);
  return path;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Seconds for `ffmpeg -i video -vf select=... -f rawvideo -pix_fmt rgb24 -` to write the frames at `indices`. */
function ffmpegSelect(path: string, indices: number[]): Promise<number> {
  const select = indices.map((i) => `eq(n\\,${i})`).join('+');
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-i', path, '-vf', `select=${select}`, '-fps_mode', 'passthrough',
      '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let bytes = 0;
    child.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
    child.on('error', reject);
    child.on('exit', (code) => {
      const expected = indices.length * 640 * 360 * 3;
      if (code !== 0 || bytes !== expected) reject(new Error(`ffmpeg exited ${code} after ${bytes}/${expected} bytes`));
      else resolve((performance.now() - started) / 1000);
    });
  });
}

export async function benchVideoSampling(repeats = 3): Promise<BenchRow[]> {
  const path = benchVideo();
  const plan = { kind: 'uniform', frames: FRAMES } as const;
  const seeking: number[] = [];
  const through: number[] = [];
  const cli: number[] = [];
  let indices: number[] = [];
  for (let r = 0; r < repeats; r++) {
    let t = performance.now();
    const decoded = await decodeVideo(path, plan);
    seeking.push((performance.now() - t) / 1000);
    indices = decoded.indices;
    decoded.frames.dispose();
    t = performance.now();
    (await decodeVideo(path, plan, { seekThreshold: 1e9 })).frames.dispose();
    through.push((performance.now() - t) / 1000);
    cli.push(await ffmpegSelect(path, indices));
  }
  const rate = (s: number) => FRAMES / s;
  const row = (name: string, ours: number[], baseline: string, theirs: number[]): BenchRow => ({
    name, baseline, unit: 'frames/s', value: rate(median(ours)), baselineValue: rate(median(theirs)),
    ratio: median(theirs) / median(ours),
  });
  return [
    row(`video 32 of 18000 frames, seeking (${(median(seeking) * 1000).toFixed(0)} ms)`, seeking,
      `ffmpeg CLI decode-all + select (${(median(cli) * 1000).toFixed(0)} ms)`, cli),
    row(`video 32 of 18000 frames, decoding all (${(median(through) * 1000).toFixed(0)} ms)`, through,
      'ffmpeg CLI decode-all + select', cli),
  ];
}
