// Where TPO's questions come from, as one type:
// - the synthetic world: its benchmark records carry the open question, its exact answer, kind and span;
// - real videos: time-stamped captions (TimeWarp's annotation layout) and an LLM that writes one question per
//   request from them (lib/tpo/questions.ts), localized ones about a caption's span.
import type { BenchmarkItem, Caption, VideoAnnotation } from '../data/records.js';
import { mulberry32, seededShuffle } from '../data/videos.js';
import { type ChatClient, LlmError } from './llm.js';
import { checkCaptions, generateQuestion } from './questions.js';

export type QuestionKind = 'localized' | 'comprehensive';

export interface TpoQuestion {
  id: string;
  /** The video as the record names it, and resolved. */
  video: string;
  videoPath: string;
  kind: QuestionKind;
  /** The synthetic world's question type (count, order, ...). */
  type?: string;
  question: string;
  /** The reference answer: exact for the synthetic world, the LLM's for real videos. */
  answer: string;
  /** Seconds [start, end): the segment a localized question is about. */
  span?: [number, number];
  /** The video's captions (real videos: what the LLM judge checks answers against). */
  captions?: Caption[];
}

/** A question (or a whole video) that could not be asked, and why: written to the dropped file and counted. */
export interface Skip {
  id: string;
  video: string;
  kind: QuestionKind | 'video';
  /** The question, when one was written. */
  prompt?: string;
  reason: string;
  detail?: string;
}

/** A synthetic benchmark record as a question; its source line named when a field TPO needs is missing. */
export function syntheticQuestion(item: BenchmarkItem): TpoQuestion {
  const where = `${item.source.file}:${item.source.line}`;
  const m = item.meta as { kind?: string; type?: string; open_question?: string; open_answer?: string; span?: [number, number] };
  if (m.kind !== 'localized' && m.kind !== 'comprehensive') throw new Error(`${where}: kind must be localized or comprehensive`);
  if (!m.open_question || !m.open_answer) throw new Error(`${where}: open_question and open_answer are needed`);
  if (m.kind === 'localized' && !(Array.isArray(m.span) && m.span[0]! < m.span[1]!))
    throw new Error(`${where}: a localized question needs its span [start, end]`);
  return {
    id: item.id, video: item.video, videoPath: item.videoPath, kind: m.kind, ...(m.type ? { type: m.type } : {}),
    question: m.open_question, answer: m.open_answer, ...(m.kind === 'localized' ? { span: m.span } : {}),
  };
}

/**
 * Questions about one annotated video, written by the LLM from its captions: `comprehensive` about the whole
 * video and `localized` about as many captions drawn at random (seeded). Captions that cannot ground a question
 * (none; spans outside the video) skip the video; a "None" reply or an unreadable one skips that question.
 * An endpoint that stays down throws (an LlmError): the caller stops with what it wrote kept. Ids in `done` (written
 * by an earlier run) are not asked again.
 */
export async function captionQuestions(
  client: ChatClient, annotation: VideoAnnotation, counts: { localized: number; comprehensive: number },
  options: { seed: number; duration?: number; done?: ReadonlySet<string> },
): Promise<{ questions: TpoQuestion[]; skips: Skip[] }> {
  const videoId = annotation.id ?? annotation.video;
  const base = { video: annotation.video, videoPath: annotation.videoPath };
  const done = options.done ?? new Set<string>();
  if (done.has(videoId)) return { questions: [], skips: [] };  // skipped on an earlier run
  try {
    checkCaptions(annotation.video, annotation.captions, options.duration);
  } catch (error) {
    const reason = annotation.captions.length === 0 ? 'no-captions' : 'caption-outside-video';
    return { questions: [], skips: [{ id: videoId, video: annotation.video, kind: 'video', reason, detail: (error as Error).message }] };
  }
  const targets = seededShuffle(annotation.captions, mulberry32(options.seed)).slice(0, counts.localized);
  const asks: { id: string; kind: QuestionKind; target?: Caption }[] = [
    ...Array.from({ length: counts.comprehensive }, (_, k) => ({ id: `${videoId}-comprehensive-${k}`, kind: 'comprehensive' as const })),
    ...targets.map((target, k) => ({ id: `${videoId}-localized-${k}`, kind: 'localized' as const, target })),
  ].filter((ask) => !done.has(ask.id));  // a resumed run asks only what it has not written
  const results = await Promise.all(asks.map(async (ask) => {
    try {
      return { ask, question: await generateQuestion(client, annotation.video, annotation.captions, ask.kind, ask.target) };
    } catch (error) {
      if (error instanceof LlmError) throw error;
      return { ask, error: error as Error };
    }
  }));
  const questions: TpoQuestion[] = [];
  const skips: Skip[] = [];
  for (const { ask, question, error } of results) {
    if (question) {
      questions.push({ id: ask.id, ...base, kind: ask.kind, question: question.question, answer: question.answer,
        ...(question.span ? { span: question.span } : {}), captions: annotation.captions });
    } else {
      skips.push({ id: ask.id, video: annotation.video, kind: ask.kind, reason: error ? 'llm-unreadable' : 'llm-no-question',
        ...(error ? { detail: error.message } : {}) });
    }
  }
  return { questions, skips };
}

/** Question types whose answer depends on the order of events: what TimeWarp's shuffled scenes change. */
export const ORDER_TYPES = new Set(['order', 'first', 'last', 'first-of', 'before', 'after']);
