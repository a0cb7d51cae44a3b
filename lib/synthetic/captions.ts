// Captions of the synthetic world, exact by construction, and annotations in TimeWarp's form
// (`{video, description: [...], scene_timestamps: [[s, e], ...]}`, as lib/data/records.ts reads them) with the
// structured events beside them.
import { eventSpan, type SynthVideo, type TimelineEvent } from './world.js';
import { type Color, MOTION_PHRASES } from './vocabulary.js';

/** "a" or "an", as the colour's first sound needs. */
export function article(color: Color): 'a' | 'an' {
  return /^[aeiou]/.test(color) ? 'an' : 'a';
}

/** One event in words: "a red circle moves left", "an orange ring blinks". */
export function caption(event: Pick<TimelineEvent, 'color' | 'shape' | 'motion'>): string {
  return `${article(event.color)} ${event.color} ${event.shape} ${MOTION_PHRASES[event.motion]}`;
}

/** An event in an annotation: what it is and when, in frames [start, end) and in seconds. */
export interface AnnotatedEvent {
  shape: string;
  color: string;
  motion: string;
  caption: string;
  frames: [number, number];
  seconds: [number, number];
}

/** A video's annotation record. */
export interface SynthAnnotation {
  id: string;
  video: string;
  description: string[];
  scene_timestamps: [number, number][];
  seed: number;
  length: string;
  fps: number;
  frames: number;
  width: number;
  height: number;
  events: AnnotatedEvent[];
}

export function annotate(event: TimelineEvent, fps: number): AnnotatedEvent {
  return {
    shape: event.shape, color: event.color, motion: event.motion, caption: caption(event),
    frames: [event.start, event.end], seconds: eventSpan(event, fps),
  };
}

/** The annotation of `video`, stored at `path` (relative to the dataset's folder), under `id`. */
export function annotation(video: SynthVideo, id: string, path: string): SynthAnnotation {
  const events = video.events.map((e) => annotate(e, video.fps));
  return {
    id, video: path, description: events.map((e) => e.caption), scene_timestamps: events.map((e) => e.seconds),
    seed: video.seed, length: video.length, fps: video.fps, frames: video.frames, width: video.width,
    height: video.height, events,
  };
}
