// lib/tpo/plans.ts: TPO's manipulated inputs select exactly the intended frames of a real video.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { comprehensivePlans, localizedPlans } from '../../lib/tpo/plans.js';
import { decodeVideo } from '../../lib/video/decode.js';
import { removeDir, tempDir } from '../helpers.js';

describe('TPO manipulated inputs', function () {
  this.timeout(60_000);
  let dir: string;
  let video: string;
  before(() => {
    dir = tempDir();
    video = join(dir, 'v.mp4');
    execFileSync('ffmpeg', ['-v', 'error', '-nostdin', '-f', 'lavfi', '-i', 'testsrc2=size=64x48:rate=10:duration=20',
      '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-g', '20', video]);
  });
  after(() => removeDir(dir));

  it('localized: the preferred frames lie inside the segment, the dis-preferred ones all outside', async () => {
    const { preferred, dispreferred } = localizedPlans([6, 9], 8);
    const inside = await decodeVideo(video, preferred);
    const outside = await decodeVideo(video, dispreferred);
    assert.equal(inside.indices.length, 8);
    assert.ok(Array.from(inside.timestamps).every((t) => t >= 6 && t < 9), `${Array.from(inside.timestamps)}`);
    assert.ok(Array.from(outside.timestamps).every((t) => t < 6 || t >= 9), `${Array.from(outside.timestamps)}`);
    assert.ok(outside.timestamps[0]! < 6 && outside.timestamps.at(-1)! >= 9, 'the rest of the video on both sides');
  });

  it('comprehensive: dense over the whole video vs a sparse downsample', async () => {
    const { preferred, dispreferred } = comprehensivePlans(16, 0.25);
    const dense = await decodeVideo(video, preferred);
    const sparse = await decodeVideo(video, dispreferred);
    assert.equal(dense.indices.length, 16);
    assert.equal(sparse.indices.length, 4);
    assert.deepEqual([dense.indices[0], dense.indices.at(-1)], [0, 199]);
  });

  it('refuses an empty span or a ratio outside (0, 1]', () => {
    assert.throws(() => localizedPlans([5, 5], 4), /start < end/);
    assert.throws(() => comprehensivePlans(8, 0), /sparseRatio/);
  });
});
