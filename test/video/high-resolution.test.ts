// native/video/reader.cc (atLeast) and preprocess.cc (chunks): an 8K video decodes to the size a tower needs in
// uint8, frame by frame, with memory bounded by the decoder (not by frames x 8K), and preprocessing full-size
// frames keeps float32 copies of a chunk only. Peak RSS measured in child processes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { decodeSizeFor, preprocessFrames, SIGLIP_384, CLIP_336, tensor } from '../../lib/index.js';
import { removeDir, ROOT, runNode, tempDir } from '../helpers.js';

const MB = 2 ** 20;

/** Peak RSS growth (MB) of `body` in a child, and what it returned. */
function measure(body: string): { growthMB: number; result: unknown } {
  const code = `
    const tpo = await import(${JSON.stringify(join(ROOT, 'dist/lib/index.js'))});
    tpo.runtimeInfo();
    const rss0 = process.memoryUsage().rss;
    const result = await (async () => { ${body} })();
    console.log(JSON.stringify({ result, growthMB: (tpo.peakRss() - rss0) / ${MB} }));
  `;
  const r = runNode(code, { timeout: 300_000, killSignal: 'SIGKILL' });
  assert.equal(r.status, 0, `child failed (status ${r.status}): ${r.stderr.slice(-1500)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

describe('high-resolution videos', function () {
  this.timeout(600_000);
  let dir: string;
  let video: string;
  before(() => {
    dir = tempDir('tpo-8k-');
    video = join(dir, '8k.mp4');
    execFileSync('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=7680x4320:rate=4:duration=2',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', video]);
  });
  after(() => removeDir(dir));

  it("gives the box a tower's preprocessing needs", () => {
    assert.deepEqual(decodeSizeFor(SIGLIP_384), { width: 768, height: 768 });
    assert.deepEqual(decodeSizeFor(CLIP_336), { width: 672, height: 672 });
    assert.equal(decodeSizeFor({ do_resize: false }), undefined);
  });

  it('decodes an 8K video to the size the tower needs with memory independent of the frame count', () => {
    const run = (frames: number) => measure(`
      const d = await tpo.decodeVideo(${JSON.stringify(video)}, { kind: 'uniform', frames: ${frames} }, { atLeast: tpo.decodeSizeFor(tpo.SIGLIP_384) });
      const p = await tpo.preprocessFrames(d.frames, tpo.SIGLIP_384);
      return [d.frames.shape, p.shape];
    `);
    const few = run(2);
    const many = run(8);
    assert.deepEqual(many.result, [[8, 768, 1366, 3], [8, 3, 384, 384]]);
    // 8 frames at 8K are 800 MB of uint8 and 3.2 GB of float32; at 768x1366 they are 25 MB.
    assert.ok(many.growthMB < 600, `decoding 8 frames of 8K grew RSS by ${many.growthMB.toFixed(0)} MB`);
    assert.ok(many.growthMB - few.growthMB < 100, `6 more frames cost ${(many.growthMB - few.growthMB).toFixed(0)} MB`);
  });

  it('preprocesses full-size 8K frames with float32 for a chunk at a time, not the whole video', () => {
    const run = (frames: number) => measure(`
      const d = await tpo.decodeVideo(${JSON.stringify(video)}, { kind: 'uniform', frames: ${frames} });
      const p = await tpo.preprocessFrames(d.frames, tpo.SIGLIP_384);
      return p.shape;
    `);
    const two = run(2);
    const six = run(6);
    assert.deepEqual(six.result, [6, 3, 384, 384]);
    // Four more frames: 4 x 95 MB of decoded uint8. Whole-video float32 copies would add 4 x 380 MB or more.
    const extra = six.growthMB - two.growthMB;
    assert.ok(extra < 4 * 95 + 250, `four more 8K frames cost ${extra.toFixed(0)} MB`);
  });

  it('gives the same numbers per frame whatever the batch (what chunking relies on)', async () => {
    const frames = 3;
    const data = new Uint8Array(frames * 50 * 70 * 3).map((_, i) => (i * 131 + (i >> 7)) % 256);
    using batch = tensor(data, [frames, 50, 70, 3], 'uint8');
    using all = await preprocessFrames(batch, SIGLIP_384);
    const whole = all.toTypedArray() as Float32Array;
    const per = whole.length / frames;
    for (let f = 0; f < frames; f++) {
      using one = tensor(data.slice(f * 50 * 70 * 3, (f + 1) * 50 * 70 * 3), [1, 50, 70, 3], 'uint8');
      using out = await preprocessFrames(one, SIGLIP_384);
      assert.deepEqual(out.toTypedArray(), whole.slice(f * per, (f + 1) * per), `frame ${f}`);
    }
  });
});
