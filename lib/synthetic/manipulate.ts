// Manipulations of a video, for preference data: TPO's (keep only the segment a question is about, remove it,
// sample frames sparsely) and TimeWarp's (shuffle the order of scenes, reverse). Each is a list of source frame
// indices (the manipulated video's frame k is the source's frame `indices[k]`; apply it with one native call,
// `frames.indexSelect(0, indices)`) and the timeline those frames show, computed from the events exactly.
import { Random } from './random.js';
import { REVERSED_MOTION } from './vocabulary.js';
import type { Timeline, TimelineEvent } from './world.js';

/** An event of a manipulated video. */
export interface ManipulatedEvent extends TimelineEvent {
  /** Its index in the source timeline. */
  source: number;
  /** Some of its frames were cut. */
  partial: boolean;
}

export interface Manipulated extends Timeline {
  /** For each frame of the manipulated video, the source frame it shows. */
  indices: number[];
  events: ManipulatedEvent[];
}

/** A frame range [start, end). */
export type FrameRange = readonly [number, number];

function checkRange(timeline: Timeline, [start, end]: FrameRange, what: string): void {
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= timeline.frames)) {
    throw new RangeError(`${what}: [${start}, ${end}) is not a frame range inside [0, ${timeline.frames})`);
  }
}

function range(start: number, end: number): number[] {
  return Array.from({ length: Math.max(0, end - start) }, (_, i) => start + i);
}

/**
 * The timeline that `indices` of `timeline`'s frames show. An event is kept when any of its frames is; its new span
 * runs from the first to the last new frame showing it. Played backwards, a motion becomes its reverse
 * (left ↔ right, up ↔ down, grow ↔ shrink).
 */
export function selectFrames(timeline: Timeline, indices: readonly number[]): Manipulated {
  const bad = indices.find((i) => !(Number.isInteger(i) && i >= 0 && i < timeline.frames));
  if (bad !== undefined) throw new RangeError(`selectFrames: frame ${bad} is not in [0, ${timeline.frames})`);
  const events: ManipulatedEvent[] = [];
  timeline.events.forEach((event, source) => {
    const shown: number[] = [];
    indices.forEach((frame, k) => {
      if (frame >= event.start && frame < event.end) shown.push(k);
    });
    if (!shown.length) return;
    const first = shown[0]!;
    const last = shown[shown.length - 1]!;
    const backwards = shown.length > 1 && indices[last]! < indices[first]!;
    events.push({
      shape: event.shape, color: event.color, motion: backwards ? REVERSED_MOTION[event.motion] : event.motion,
      start: first, end: last + 1, source, partial: new Set(shown.map((k) => indices[k])).size < event.end - event.start,
    });
  });
  events.sort((a, b) => a.start - b.start || a.source - b.source);
  return { frames: indices.length, fps: timeline.fps, indices: [...indices], events };
}

/** Only the frames in `[start, end)` (TPO localized, preferred side: the segment the question is about). */
export function keepRange(timeline: Timeline, frames: FrameRange): Manipulated {
  checkRange(timeline, frames, 'keepRange');
  return selectFrames(timeline, range(frames[0], frames[1]));
}

/** Every frame but those in `[start, end)` (TPO localized, dis-preferred side: the segment removed). */
export function removeRange(timeline: Timeline, frames: FrameRange): Manipulated {
  checkRange(timeline, frames, 'removeRange');
  return selectFrames(timeline, [...range(0, frames[0]), ...range(frames[1], timeline.frames)]);
}

/**
 * `count` frames spread evenly over the video, as numpy.linspace(0, n - 1, count).astype(int) picks them (the
 * uniform sampling of lib/video's 'uniform' plan); TPO comprehensive, dis-preferred side. Events between the
 * samples vanish.
 */
export function downsample(timeline: Timeline, count: number): Manipulated {
  if (!(Number.isInteger(count) && count >= 1)) throw new RangeError(`downsample: count ${count} is not a positive integer`);
  const n = timeline.frames;
  const indices = count === 1 ? [0] : range(0, count).map((i) => Math.floor((i * (n - 1)) / (count - 1)));
  return selectFrames(timeline, indices);
}

/**
 * The scenes in another order (TimeWarp's corruption). Scene i runs from event i's first frame to event i + 1's
 * (the leading gap belongs to the first scene, the trailing gap to the last), so every frame moves with the scene
 * it belongs to. The order is a shuffle from `seed` that moves at least one scene when there are two or more.
 */
export function shuffleScenes(timeline: Timeline, seed: number): Manipulated {
  const { events, frames } = timeline;
  if (events.length < 2) return selectFrames(timeline, range(0, frames));
  const bounds = events.map((e, i) => (i === 0 ? 0 : e.start));
  const scenes = bounds.map((start, i) => range(start, bounds[i + 1] ?? frames));
  const random = new Random(seed);
  let order = random.shuffle(range(0, scenes.length));
  while (order.every((s, i) => s === i)) order = random.shuffle(order);
  return selectFrames(timeline, order.flatMap((s) => scenes[s]!));
}

/** The video played backwards: events in reverse order, each motion reversed. */
export function reverse(timeline: Timeline): Manipulated {
  return selectFrames(timeline, range(0, timeline.frames).reverse());
}
