// native/video/encoder.cc through lib/video/encode.ts: rendered frames written as real video files and read
// back through lib/video's decoder.
//
// Tolerance: yuv420p halves colour resolution, so a pixel on a shape's edge can be off by 100 and more; whole
// frames stay close. Measured on 10 long videos at the defaults (H.264 CRF 23, noise 3): every frame's mean
// absolute error <= 3.2 (of 255), PSNR >= 34.7 dB over a video; MPEG-4 (CRF 23 -> qscale 14) the same.
// Asserted: every frame <= 6, every video >= 32 dB.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { renderVideo } from '../../lib/synthetic/render.js';
import { makeVideo, type SynthVideo } from '../../lib/synthetic/world.js';
import { decodeVideo, encodeVideo, probeVideo } from '../../lib/video/index.js';
import { tensor } from '../../lib/tensor.js';
import { removeDir, tempDir } from '../helpers.js';

const FRAME_MAE = 6;
const VIDEO_PSNR = 32;

function frameErrors(a: Uint8Array, b: Uint8Array, frameBytes: number): { perFrame: number[]; psnr: number } {
  assert.equal(a.length, b.length);
  const perFrame: number[] = [];
  let squares = 0;
  for (let f = 0; f * frameBytes < a.length; f++) {
    let sum = 0;
    for (let i = f * frameBytes; i < (f + 1) * frameBytes; i++) {
      const e = a[i]! - b[i]!;
      sum += Math.abs(e);
      squares += e * e;
    }
    perFrame.push(sum / frameBytes);
  }
  return { perFrame, psnr: 10 * Math.log10((255 * 255) / (squares / a.length)) };
}

function mae(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

describe('video encoding', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = tempDir('tpo-encode-');
  });
  after(() => removeDir(dir));

  async function roundTrip(video: SynthVideo, file: string, codec: 'h264' | 'mpeg4') {
    const frames = await renderVideo(video);
    const written = await encodeVideo(frames, file, { fps: video.fps, codec });
    const decoded = await decodeVideo(file, { kind: 'uniform', frames: video.frames });
    const result = { written, rendered: frames.toTypedArray(), decoded: decoded.frames.toTypedArray(), info: decoded.info, indices: decoded.indices };
    frames.dispose();
    decoded.frames.dispose();
    return result;
  }

  for (const [codec, name, expected] of [['h264', 'long.mp4', 'h264'], ['mpeg4', 'long.avi', 'mpeg4']] as const) {
    it(`writes ${codec} that decodes back to the rendered frames within the codec's tolerance (${name})`, async () => {
      const video = makeVideo(11, { length: 'long' });
      const file = join(dir, name);
      const r = await roundTrip(video, file, codec);
      assert.equal(r.written.frames, video.frames);
      assert.equal(r.written.codec, codec === 'h264' ? 'libx264' : 'mpeg4');
      assert.deepEqual(
        [r.info.codec, r.info.pixelFormat, r.info.fps, r.info.width, r.info.height, r.info.frameCount],
        [expected, 'yuv420p', video.fps, 64, 64, video.frames],
      );
      assert.deepEqual(r.indices, Array.from({ length: video.frames }, (_, i) => i));
      const { perFrame, psnr } = frameErrors(r.rendered, r.decoded, 64 * 64 * 3);
      const worst = Math.max(...perFrame);
      assert.ok(worst <= FRAME_MAE, `worst frame's mean absolute error ${worst.toFixed(2)} > ${FRAME_MAE}`);
      assert.ok(psnr >= VIDEO_PSNR, `PSNR ${psnr.toFixed(1)} dB < ${VIDEO_PSNR}`);

      // Frame k of the file is frame k of the render: where a shape appears or goes, the decoded frame is
      // nearer its own rendered frame than the one beside it.
      const frame = (data: Uint8Array, k: number) => data.subarray(k * 12288, (k + 1) * 12288);
      for (const e of video.events) {
        if (e.start > 0) {
          const k = e.start;
          assert.ok(mae(frame(r.decoded, k), frame(r.rendered, k)) < mae(frame(r.decoded, k), frame(r.rendered, k - 1)), `start of frame ${k}`);
        }
        if (e.end < video.frames && e.blinkPeriod === 0) {
          const k = e.end - 1;
          assert.ok(mae(frame(r.decoded, k), frame(r.rendered, k)) < mae(frame(r.decoded, k), frame(r.rendered, k + 1)), `end at frame ${k}`);
        }
      }
    });
  }

  it('writes the same bytes for the same frames, however many videos the process encoded before or beside', async () => {
    // libx264 with B-frames did not (see native/video/encoder.cc): repeat encodes, two at a time, in one process.
    const videos = await Promise.all([20, 21, 22, 23, 24, 25].map((seed) => renderVideo(makeVideo(seed))));
    const digests = new Map<number, Set<string>>();
    for (let round = 0; round < 3; round++) {
      await Promise.all([0, 1].map(async (lane) => {
        for (let i = lane; i < videos.length; i += 2) {
          const file = join(dir, `same-${i}.mp4`);
          await encodeVideo(videos[i]!, file, { fps: 8 });
          const set = digests.get(i) ?? new Set();
          digests.set(i, set.add(createHash('sha256').update(readFileSync(file)).digest('hex')));
        }
      }));
    }
    for (const v of videos) v.dispose();
    assert.deepEqual([...digests.values()].map((s) => s.size), [1, 1, 1, 1, 1, 1]);
  });

  it('takes the container from the extension and the frame rate as given', async () => {
    const video = makeVideo(13, { length: 'short', fps: 12.5 });
    const frames = await renderVideo(video);
    await encodeVideo(frames, join(dir, 'rate.mkv'), { fps: 12.5 });
    frames.dispose();
    const info = await probeVideo(join(dir, 'rate.mkv'), { countFrames: true });
    assert.deepEqual([info.codec, info.fps, info.frameCount], ['h264', 12.5, video.frames]);
  });

  it('refuses frames it cannot encode, and leaves no file behind', async () => {
    const odd = tensor(new Uint8Array(2 * 5 * 6 * 3), [2, 5, 6, 3]);
    await assert.rejects(encodeVideo(odd, join(dir, 'odd.mp4'), { fps: 8 }), {
      code: 'ERR_TPO_NATIVE', message: /videoEncode .*odd\.mp4: frames: yuv420p needs an even width and height/,
    });
    const floats = tensor(new Float32Array(2 * 4 * 4 * 3), [2, 4, 4, 3]);
    await assert.rejects(encodeVideo(floats, join(dir, 'float.mp4'), { fps: 8 }), { message: /frames must be uint8 \[T, H, W, 3\]/ });
    const ok = tensor(new Uint8Array(2 * 4 * 4 * 3), [2, 4, 4, 3]);
    await assert.rejects(encodeVideo(ok, join(dir, 'what.unknown-extension'), { fps: 8 }), { message: /no container for this file name's extension/ });
    await assert.rejects(encodeVideo(ok, join(dir, 'missing-folder', 'x.mp4'), { fps: 8 }), { message: /cannot create temporary file/ });
    await assert.rejects(async () => encodeVideo(ok, join(dir, 'x.mp4'), { fps: 0 }), { code: 'ERR_TPO_ARGUMENT', message: /fps/ });
    assert.deepEqual(readdirSync(dir).filter((f) => /odd|float|what|tmp/.test(f)), []);
  });
});
