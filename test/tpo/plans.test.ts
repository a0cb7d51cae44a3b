// lib/tpo/plans.ts: TPO's manipulated inputs select exactly the intended frames of a real video.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { comprehensivePlans, corruptedPlans, localizedPlans, shuffledScenePlans } from '../../lib/tpo/plans.js';
import { corruptFrames } from '../../lib/video/corrupt.js';
import { decodeVideo, shownDuration, shownTimes } from '../../lib/video/decode.js';
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

  it('TimeWarp explicit: the same frames, whole scenes moved, never the true order', async () => {
    // 20 s at 10 fps; scenes [0, 5), [5, 12), [14, 20): frames in the gap [12, 14) belong to the scene before it.
    const scenes: [number, number][] = [[0, 5], [5, 12], [14, 20]];
    for (const seed of [0, 1, 2, 3]) {
      const { preferred, dispreferred, order } = shuffledScenePlans(scenes, { frameCount: 200, fps: 10 }, 16, seed);
      assert.equal(preferred.kind, 'indices');
      const truth = (preferred as { indices: number[] }).indices;
      const shown = (dispreferred as { indices: number[] }).indices;
      assert.deepEqual(truth, [...truth].sort((a, b) => a - b), 'preferred in time order');
      assert.deepEqual([...shown].sort((a, b) => a - b), truth, 'the same frames');
      assert.notDeepEqual(order, [0, 1, 2]);
      const sceneOf = (i: number) => (i / 10 >= 14 ? 2 : i / 10 >= 5 ? 1 : 0);
      // Each scene's frames stay together and in order; the scenes come in `order`.
      const runs = shown.map(sceneOf).filter((s, k, all) => k === 0 || all[k - 1] !== s);
      assert.deepEqual(runs, order);
      const decoded = await decodeVideo(video, dispreferred);
      assert.deepEqual(decoded.indices, shown, 'the decoder returns them in the plan\'s order');
    }
    assert.throws(() => shuffledScenePlans([[0, 20]], { frameCount: 200, fps: 10 }, 16, 0), /at least two scenes/);
    assert.throws(() => shuffledScenePlans([[0, 19.9], [19.95, 20]], { frameCount: 200, fps: 10 }, 4, 0), /shuffling needs two/);
  });

  it('each input shows its own video\'s times (shownTimes): a kept segment from 0, a cut closed up, shuffled scenes at the true order\'s times', async () => {
    const times = (d: { indices: number[] }) => d.indices.map((i) => i / 10);
    const { preferred, dispreferred } = localizedPlans([6, 9], 8);
    const inside = shownTimes(preferred, times(await decodeVideo(video, preferred)));
    assert.ok(inside[0]! < 0.1 && inside.every((t) => t >= 0 && t < 3), `${inside}`);
    const source = times(await decodeVideo(video, dispreferred));
    const outside = shownTimes(dispreferred, source);
    // 20 s less the 3 s cut: the frames after 9 s move up by 3 s, the ones before stay
    assert.deepEqual(outside, source.map((t) => (t >= 9 ? t - 3 : t)));
    assert.ok(outside.at(-1)! < 17 && outside.every((t, k) => k === 0 || t > outside[k - 1]!));
    const scenes: [number, number][] = [[0, 5], [5, 14], [14, 20]];
    const plans = shuffledScenePlans(scenes, { frameCount: 200, fps: 10 }, 16, 3);
    const truth = times(await decodeVideo(video, plans.preferred));
    const shuffled = times(await decodeVideo(video, plans.dispreferred));
    assert.notDeepEqual(shuffled, truth);
    assert.deepEqual(shownTimes(plans.dispreferred, shuffled), shownTimes(plans.preferred, truth));
    assert.deepEqual(shownTimes(plans.preferred, truth), truth);
    assert.deepEqual(shownTimes({ kind: 'uniform', frames: 3, range: [2, 10], exclude: [[4, 6], [5, 7], [0, 1]] }, [2, 3, 8, 9.5]), [0, 1, 3, 4.5]);
    // the length of the video each input makes (shownDuration): the segment's, the rest's, the whole reordered one's
    assert.deepEqual([preferred, dispreferred, plans.dispreferred].map((p) => shownDuration(p, 20)), [3, 17, 20]);
    assert.equal(shownDuration({ kind: 'uniform', frames: 3, range: [2, 10], exclude: [[4, 6], [5, 7], [0, 1]] }, 20), 5);
    assert.equal(shownDuration({ kind: 'uniform', frames: 3, range: [15, 30] }, 20), 5);
  });

  it('TimeWarp implicit: the same frames, corrupted the same way for a seed, untouched at scale 1 without jitter', async () => {
    const { preferred, dispreferred } = corruptedPlans(6);
    assert.deepEqual(preferred, dispreferred);
    const { frames } = await decodeVideo(video, preferred);
    const clean = frames.toTypedArray();
    const a = (await corruptFrames(frames, { seed: 4 })).toTypedArray();
    const b = (await corruptFrames(frames, { seed: 4 })).toTypedArray();
    const c = (await corruptFrames(frames, { seed: 5 })).toTypedArray();
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    const meanDiff = (x: Uint8Array) => x.reduce((sum, v, i) => sum + Math.abs(v - clean[i]!), 0) / x.length;
    assert.ok(meanDiff(a) > 5, `corrupted frames differ from the clean ones (mean ${meanDiff(a)})`);
    const identity = await corruptFrames(frames, { scale: 1, brightness: 0, contrast: 0, saturation: 0 });
    assert.deepEqual(identity.shape, frames.shape);
    assert.ok(meanDiff(identity.toTypedArray()) < 0.01, 'no corruption asked, none done');
    await assert.rejects(corruptFrames(frames, { scale: 0 }), /scale/);
  });
});
