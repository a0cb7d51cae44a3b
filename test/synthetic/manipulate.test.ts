// lib/synthetic/manipulate.ts: each manipulation's frame list and the timeline it claims those frames show, checked
// against the frames themselves (applied natively with Tensor.indexSelect to rendered videos).
import assert from 'node:assert/strict';

import { caption } from '../../lib/synthetic/captions.js';
import {
  downsample, keepRange, type Manipulated, removeRange, reverse, selectFrames, shuffleScenes,
} from '../../lib/synthetic/manipulate.js';
import { makeQuestions } from '../../lib/synthetic/questions.js';
import { renderVideo } from '../../lib/synthetic/render.js';
import { makeVideo, type SynthVideo, type TimelineEvent } from '../../lib/synthetic/world.js';
import { answerOpen } from './oracle.js';

const key = (e: TimelineEvent) => caption(e);

/** Every event of `m` covers exactly the new frames that show its source event, and events do not overlap. */
function assertConsistent(video: SynthVideo, m: Manipulated): void {
  assert.equal(m.frames, m.indices.length);
  for (const e of m.events) {
    const source = video.events[e.source]!;
    for (let k = 0; k < m.frames; k++) {
      const shows = m.indices[k]! >= source.start && m.indices[k]! < source.end;
      assert.equal(shows, k >= e.start && k < e.end, `frame ${k} and ${caption(e)} [${e.start}, ${e.end})`);
    }
  }
  m.events.forEach((e, i) => assert.ok(i === 0 || m.events[i - 1]!.end <= e.start));
}

describe('synthetic manipulations', () => {
  const video = makeVideo(21, { length: 'long' });

  it('removing a range removes exactly the events inside it, and shifts the rest', () => {
    for (let i = 1; i + 3 < video.events.length; i += 4) {
      const [first, last] = [video.events[i]!, video.events[i + 2]!];
      const m = removeRange(video, [first.start, last.end]);
      assertConsistent(video, m);
      const expected = video.events.filter((_, j) => j < i || j > i + 2);
      assert.deepEqual(m.events.map(key), expected.map(key));
      assert.deepEqual(m.events.map((e) => e.source), video.events.map((_, j) => j).filter((j) => j < i || j > i + 2));
      assert.equal(m.frames, video.frames - (last.end - first.start));
      const shift = last.end - first.start;
      for (const e of m.events) {
        const s = video.events[e.source]!;
        assert.deepEqual([e.start, e.end, e.partial], s.start < first.start ? [s.start, s.end, false] : [s.start - shift, s.end - shift, false]);
      }
    }
  });

  it('keeping a range keeps exactly the events inside it; events cut at its edges are partial', () => {
    const [a, b] = [video.events[5]!, video.events[8]!];
    const m = keepRange(video, [a.start, b.end]);
    assertConsistent(video, m);
    assert.deepEqual(m.events.map((e) => e.source), [5, 6, 7, 8]);
    assert.deepEqual(m.events.map((e) => e.partial), [false, false, false, false]);
    assert.equal(m.events[0]!.start, 0);

    const cut = keepRange(video, [a.start + 1, b.end - 1]);
    assertConsistent(video, cut);
    assert.deepEqual(cut.events.map((e) => [e.source, e.partial]), [[5, true], [6, false], [7, false], [8, true]]);
    assert.throws(() => keepRange(video, [10, video.frames + 1]), RangeError);
  });

  it('downsampling takes evenly spaced frames (numpy linspace, floored) and loses the events between them', () => {
    const m = downsample(video, 8);
    assertConsistent(video, m);
    const n = video.frames;
    assert.deepEqual(m.indices, Array.from({ length: 8 }, (_, i) => Math.floor((i * (n - 1)) / 7)));
    assert.ok(m.events.length < video.events.length, 'a sparse sample of a long video misses events');
    for (const e of video.events) {
      const sampled = m.indices.some((f) => f >= e.start && f < e.end);
      assert.equal(m.events.some((x) => video.events[x.source] === e), sampled);
    }
    assert.deepEqual(downsample(video, video.frames).indices, Array.from({ length: n }, (_, i) => i));
  });

  it('shuffling scenes moves whole scenes: the same events and frames, in another order', () => {
    const m = shuffleScenes(video, 3);
    assertConsistent(video, m);
    assert.deepEqual([...m.indices].sort((x, y) => x - y), Array.from({ length: video.frames }, (_, i) => i));
    assert.deepEqual(m.events.map(key).sort(), video.events.map(key).sort());
    assert.notDeepEqual(m.events.map((e) => e.source), video.events.map((_, i) => i));
    for (const e of m.events) assert.equal(e.end - e.start, video.events[e.source]!.end - video.events[e.source]!.start);
    assert.deepEqual(shuffleScenes(video, 3), m);
    // Questions about the shuffled timeline have the shuffled answers (TimeWarp's dis-preferred side).
    for (const q of makeQuestions(m, 1)) assert.equal(answerOpen(q.question, m.events), q.answer);
  });

  it('reversing plays events backwards, in reverse order, each motion reversed', () => {
    const m = reverse(video);
    assertConsistent(video, m);
    assert.deepEqual(m.events.map((e) => e.source), video.events.map((_, i) => i).reverse());
    const flip: Record<string, string> = { left: 'right', right: 'left', up: 'down', down: 'up', grow: 'shrink', shrink: 'grow' };
    m.events.forEach((e) => {
      const s = video.events[e.source]!;
      assert.equal(e.motion, flip[s.motion] ?? s.motion);
    });
    assert.deepEqual(reverse(m).events.map(key), video.events.map(key));
  });

  it('applies natively: the manipulated video frame k is the source frame indices[k]', async function () {
    this.timeout(30_000);
    const frames = await renderVideo(video);
    const source = frames.toTypedArray();
    const size = 64 * 64 * 3;
    for (const m of [removeRange(video, [20, 90]), downsample(video, 16), shuffleScenes(video, 1), reverse(video)]) {
      const out = frames.indexSelect(0, m.indices);
      assert.deepEqual(out.shape, [m.frames, 64, 64, 3]);
      const data = out.toTypedArray();
      m.indices.forEach((f, k) => {
        assert.ok(Buffer.from(data.subarray(k * size, (k + 1) * size)).equals(Buffer.from(source.subarray(f * size, (f + 1) * size))));
      });
      out.dispose();
    }
    frames.dispose();
  });

  it('refuses frames outside the video', () => {
    assert.throws(() => selectFrames(video, [0, video.frames]), { name: 'RangeError', message: /not in \[0, \d+\)/ });
    assert.throws(() => downsample(video, 0), RangeError);
  });
});
