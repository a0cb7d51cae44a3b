// The synthetic temporal world: a video is a timeline of events, each one coloured shape doing one motion for a
// few frames, with optional gaps between them. Everything is drawn from a seed: the same seed and options give the
// same timeline, and (native/synthetic/render.cc) the same pixels, bit for bit.
import { z } from 'zod';

import { parse } from '../validate.js';
import { Random } from './random.js';
import {
  BACKGROUNDS, type Color, COLOR_NAMES, MAX_NUMBER, type Motion, MOTIONS, type Rgb, type Shape, SHAPES,
} from './vocabulary.js';

/** One event as the questions see it: what was shown, and for which frames [start, end). */
export interface TimelineEvent {
  shape: Shape;
  color: Color;
  motion: Motion;
  start: number;
  end: number;
}

/** A shape's centre (pixels from the top-left corner) and half-size on one frame. */
export interface Pose {
  x: number;
  y: number;
  size: number;
}

/** An event of a rendered video: also where its shape is on its first and last frame. */
export interface WorldEvent extends TimelineEvent {
  from: Pose;
  to: Pose;
  /** Blinking: shown for this many frames, hidden for as many, ...; 0 otherwise. */
  blinkPeriod: number;
}

/** What captions, questions and manipulations work on: events in time order over `frames` frames. */
export interface Timeline {
  frames: number;
  fps: number;
  events: readonly TimelineEvent[];
}

export type LengthBin = 'short' | 'long';

export interface SynthVideo extends Timeline {
  seed: number;
  length: LengthBin;
  width: number;
  height: number;
  background: Rgb;
  noise: number;
  events: WorldEvent[];
}

const IntRange = z
  .tuple([z.int().nonnegative(), z.int().nonnegative()])
  .refine(([lo, hi]) => lo <= hi, 'a range is [min, max] with min <= max');

/** How a length bin's videos are made: how many events, how long each (frames), the gaps before each. */
export const LengthSpec = z.strictObject({
  events: IntRange.refine(([lo, hi]) => lo >= 1 && hi <= MAX_NUMBER, `events must lie in [1, ${MAX_NUMBER}]`),
  // Blinking needs 4 frames to be seen blinking (2 shown, 2 hidden).
  eventFrames: IntRange.refine(([lo]) => lo >= 4, 'an event lasts at least 4 frames'),
  gapFrames: IntRange,
});
export type LengthSpec = z.input<typeof LengthSpec>;

/** Short: a few events, tens of frames. Long: many short events, hundreds of frames, so that a sparse sample of
 * frames misses events (the regime TPO targets). */
export const LENGTHS: Record<LengthBin, z.output<typeof LengthSpec>> = {
  short: { events: [3, 5], eventFrames: [8, 16], gapFrames: [0, 4] },
  long: { events: [16, 28], eventFrames: [6, 12], gapFrames: [0, 3] },
};

export const WorldOptions = z.strictObject({
  /** Frame size; even, because videos are stored as yuv420p. 64 x 64 is the tiny model's input size. */
  width: z.int().min(16).max(1024).multipleOf(2).default(64),
  height: z.int().min(16).max(1024).multipleOf(2).default(64),
  fps: z.number().positive().max(120).default(8),
  /** Background noise: each pixel is offset by up to this much, on every frame anew. */
  noise: z.int().min(0).max(64).default(3),
  /** 'mixed': each video is short or long at even odds, decided by its seed. */
  length: z.enum(['short', 'long', 'mixed']).default('mixed'),
  short: LengthSpec.default(LENGTHS.short),
  long: LengthSpec.default(LENGTHS.long),
});
export type WorldOptions = z.input<typeof WorldOptions>;
export type ResolvedWorldOptions = z.output<typeof WorldOptions>;

export function resolveWorldOptions(options: WorldOptions = {}): ResolvedWorldOptions {
  return parse(WorldOptions, options, 'world options');
}

const BLINK_PERIOD = 2;

/** Where the shape starts and ends for `motion`, kept wholly inside the frame. Sizes scale with the frame. */
function placement(motion: Motion, width: number, height: number, random: Random): { from: Pose; to: Pose } {
  const scale = Math.min(width, height) / 64;
  const px = (n: number) => Math.max(2, Math.round(n * scale));
  const margin = 1;
  // Growing and shrinking double or halve the size; everything else keeps it.
  const small = random.int(px(3), px(4));
  const size = motion === 'grow' || motion === 'shrink' ? 2 * small : random.int(px(5), px(8));
  const travel = random.int(px(14), px(24));
  const span = (extent: number, move: number) => [size + margin + Math.max(0, -move), extent - size - margin - Math.max(0, move)];
  const dx = motion === 'left' ? -travel : motion === 'right' ? travel : 0;
  const dy = motion === 'up' ? -travel : motion === 'down' ? travel : 0;
  const [x0, x1] = span(width, dx);
  const [y0, y1] = span(height, dy);
  const x = random.int(x0!, x1!);
  const y = random.int(y0!, y1!);
  const from = { x, y, size: motion === 'grow' ? small : size };
  const to = { x: x + dx, y: y + dy, size: motion === 'shrink' ? small : size };
  return { from, to };
}

/** The video `seed` stands for: its length bin, its events, and how it is drawn. */
export function makeVideo(seed: number, options: WorldOptions = {}): SynthVideo {
  const o = resolveWorldOptions(options);
  const random = new Random(seed);
  const length: LengthBin = o.length === 'mixed' ? (random.chance(0.5) ? 'long' : 'short') : o.length;
  const spec = o[length];
  const count = random.int(...spec.events);
  const events: WorldEvent[] = [];
  let cursor = 0;
  for (let i = 0; i < count; i++) {
    cursor += random.int(...spec.gapFrames);
    const previous = events[i - 1];
    let color: Color;
    let shape: Shape;
    // Back-to-back events differ in colour or shape, or they would look like one event.
    do {
      color = random.pick(COLOR_NAMES);
      shape = random.pick(SHAPES);
    } while (previous && previous.color === color && previous.shape === shape);
    const motion = random.pick(MOTIONS);
    const frames = random.int(...spec.eventFrames);
    events.push({
      shape, color, motion, start: cursor, end: cursor + frames, ...placement(motion, o.width, o.height, random),
      blinkPeriod: motion === 'blink' ? BLINK_PERIOD : 0,
    });
    cursor += frames;
  }
  cursor += random.int(...spec.gapFrames);
  return {
    seed, length, width: o.width, height: o.height, fps: o.fps, frames: cursor, background: random.pick(BACKGROUNDS),
    noise: o.noise, events,
  };
}

/** Seconds from the start at frame `frame` (rounded to microseconds, so JSON stays short). */
export function frameTime(frame: number, fps: number): number {
  return Math.round((frame / fps) * 1e6) / 1e6;
}

/** An event's time span in seconds, [start, end). */
export function eventSpan(event: TimelineEvent, fps: number): [number, number] {
  return [frameTime(event.start, fps), frameTime(event.end, fps)];
}
