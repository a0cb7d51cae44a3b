// The units of TPO's generation: one video each, with its questions (synthetic ones known up front, LLM ones
// written when the unit comes up), and the inputs a question is answered from.
import type { VideoAnnotation } from '../data/records.js';
import { VideoError } from '../model/session.js';
import { probeVideo } from '../video/decode.js';
import type { VideoInfo } from '../video/decode.js';
import type { ChatClient } from './llm.js';
import { type PlanPair, comprehensivePlans, corruptedPlans, localizedPlans, shuffledScenePlans } from './plans.js';
import { mixed } from './quotas.js';
import { captionQuestions, ORDER_TYPES, type Skip, type TpoQuestion } from './sources.js';

/** A unit of work: one video and (possibly after an LLM call) its questions. */
export interface VideoWork {
  video: string;
  videoPath: string;
  questions: () => Promise<{ questions: TpoQuestion[]; skips: Skip[] }>;
}

/** A video's metadata, or a VideoError naming it (a file that cannot be opened as a video). */
export async function probe(path: string): Promise<VideoInfo> {
  try {
    return await probeVideo(path);
  } catch (error) {
    throw new VideoError(path, error as Error);
  }
}

/** Synthetic questions in the mix's order, grouped by video in order of first use. */
export function syntheticWork(
  questions: readonly TpoQuestion[], mix: readonly [number, number], seed: number, untilRunOut: boolean,
): VideoWork[] {
  const byVideo = new Map<string, TpoQuestion[]>();
  for (const q of mixed(questions, mix, seed, untilRunOut)) byVideo.set(q.videoPath, [...(byVideo.get(q.videoPath) ?? []), q]);
  return [...byVideo.values()].map((qs) => ({
    video: qs[0]!.video, videoPath: qs[0]!.videoPath, questions: async () => ({ questions: qs, skips: [] }),
  }));
}

/** Questions the LLM writes from each annotated video's captions, `counts` of each kind the mix asks for. */
export function captionWork(
  annotations: readonly VideoAnnotation[], client: ChatClient, perVideo: { localized: number; comprehensive: number },
  mix: readonly [number, number], seed: number, done: ReadonlySet<string>,
): VideoWork[] {
  const share = mix[0] / (mix[0] + mix[1]);
  const counts = {
    localized: share > 0 ? perVideo.localized : 0,
    comprehensive: share < 1 ? perVideo.comprehensive : 0,
  };
  return annotations.map((a, i) => ({
    video: a.video, videoPath: a.videoPath,
    questions: async () => {
      const { duration } = await probe(a.videoPath);
      return captionQuestions(client, a, counts, { seed: seed + i, duration, done });
    },
  }));
}

/** How a question's two answers are made: the manipulation's plans and settings. */
export interface InputSettings {
  manipulation: 'tpo' | 'timewarp-explicit' | 'timewarp-implicit' | 'none';
  frames: number;
  sparseRatio: number;
  seed: number;
}

export type Inputs = { key: string; plans: PlanPair; corrupt: boolean; scenes?: number[] } | { skip: string; detail?: string };

/** The inputs a question is answered from, with a key shared by every question that can share them. */
export async function inputsFor(c: InputSettings, q: TpoQuestion, scenes: ReadonlyMap<string, [number, number][]>): Promise<Inputs> {
  switch (c.manipulation) {
    case 'tpo':
      return q.kind === 'localized'
        ? { key: `span:${q.span}`, plans: localizedPlans(q.span!, c.frames), corrupt: false }
        : { key: 'whole', plans: comprehensivePlans(c.frames, c.sparseRatio), corrupt: false };
    case 'timewarp-implicit':
      return { key: 'whole', plans: corruptedPlans(c.frames), corrupt: true };
    case 'none':
      return { key: 'whole', plans: { preferred: { kind: 'uniform', frames: c.frames }, dispreferred: { kind: 'uniform', frames: c.frames } }, corrupt: false };
    case 'timewarp-explicit': {
      if (q.type && !ORDER_TYPES.has(q.type)) return { skip: 'not-order-question' };
      const spans = scenes.get(q.videoPath);
      if (!spans || spans.length < 2) return { skip: 'too-few-scenes', detail: `${q.video}: ${spans?.length ?? 0} scene(s) in the annotations` };
      const info = await probe(q.videoPath);
      try {
        const plans = shuffledScenePlans(spans, info, c.frames, c.seed);
        return { key: 'scenes', plans, corrupt: false, scenes: plans.order };
      } catch (error) {
        return { skip: 'too-few-scenes', detail: (error as Error).message };
      }
    }
  }
}

/** Each annotated video's scenes (caption spans), by video path. */
export function scenesOf(annotations: readonly VideoAnnotation[]): Map<string, [number, number][]> {
  return new Map(annotations.map((a) => [a.videoPath, a.captions.map((c) => [c.start, c.end] as [number, number])]));
}
