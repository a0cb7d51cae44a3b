// Questions and judgements for real videos through an LLM (lib/tpo/llm.ts), in the spirit of TPO's prompts: the
// LLM sees only the captions with their time spans; it writes one question and its answer (or "None" when the
// captions support no good question), and later judges a pair with TPO's three checks.
import type { Caption } from '../data/records.js';
import type { ChatClient, ChatMessage } from './llm.js';

export interface GeneratedQuestion {
  question: string;
  answer: string;
  /** Localized questions: the segment the question is about. */
  span?: [number, number];
}

export interface JudgeVerdict {
  /** The preferred answer is right (given the captions). */
  correct: boolean;
  /** It does not contradict the captions. */
  consistent: boolean;
  /** It is better than the dis-preferred answer. */
  better: boolean;
}

/** Refuses captions that cannot ground a question: none at all, or spans outside [0, duration]. */
export function checkCaptions(video: string, captions: Caption[], duration?: number): void {
  if (captions.length === 0) throw new Error(`${video}: has no captions to ask about`);
  captions.forEach((c, i) => {
    if (!(c.start >= 0 && c.end > c.start) || (duration !== undefined && c.end > duration + 1e-6))
      throw new Error(`${video}: caption ${i} spans [${c.start}, ${c.end}], outside the video (0 to ${duration ?? '?'} s)`);
  });
}

const timeline = (captions: Caption[]) =>
  captions.map((c) => `[${c.start.toFixed(1)}s - ${c.end.toFixed(1)}s] ${c.text}`).join('\n');

/** TPO-style question generation: comprehensive (the whole video) or localized (the `target` caption). */
export function questionPrompt(captions: Caption[], kind: 'localized' | 'comprehensive', target?: Caption): ChatMessage[] {
  const focus = kind === 'localized' && target
    ? `Ask about what happens between ${target.start.toFixed(1)}s and ${target.end.toFixed(1)}s only ("${target.text}"); ` +
      'the question must need that moment of the video to answer.'
    : 'Ask about the video as a whole: the order of events, how many times something happens, what changes over time.';
  return [
    { role: 'system', content: 'You write questions that test whether a viewer understood a video. You see only its time-stamped captions.' },
    {
      role: 'user',
      content: `Captions of the video:\n${timeline(captions)}\n\n${focus}\n` +
        'Write one question whose answer the captions state exactly, and its short answer, as\n' +
        'Question: <question>\nAnswer: <answer>\n' +
        'If the captions support no good question, reply with the single word None.',
    },
  ];
}

/** The question and answer in a reply, null for "None"; an Error (quoting the reply) for anything else. */
export function parseQuestionReply(reply: string): { question: string; answer: string } | null {
  const text = reply.trim();
  if (/^none\.?$/i.test(text)) return null;
  const question = /question:\s*(.+)/i.exec(text)?.[1]?.trim();
  const answer = /answer:\s*(.+)/i.exec(text)?.[1]?.trim();
  if (!question || !answer) throw new Error(`cannot read a question and an answer in the reply: ${JSON.stringify(text.slice(0, 200))}`);
  return { question, answer };
}

export async function generateQuestion(
  client: ChatClient, video: string, captions: Caption[], kind: 'localized' | 'comprehensive', target?: Caption,
): Promise<GeneratedQuestion | null> {
  checkCaptions(video, captions);
  const parsed = parseQuestionReply(await client.complete(questionPrompt(captions, kind, target)));
  if (!parsed) return null;
  return { ...parsed, ...(kind === 'localized' && target ? { span: [target.start, target.end] as [number, number] } : {}) };
}

/** TPO's post-filter, asked of an LLM: the three checks, answered as JSON. */
export function judgePrompt(captions: Caption[], question: string, preferred: string, dispreferred: string): ChatMessage[] {
  return [
    { role: 'system', content: 'You check answers about a video against its time-stamped captions.' },
    {
      role: 'user',
      content: `Captions:\n${timeline(captions)}\n\nQuestion: ${question}\nAnswer A: ${preferred}\nAnswer B: ${dispreferred}\n\n` +
        'Reply with JSON only: {"correct": is A right?, "consistent": does A agree with every caption?, ' +
        '"better": is A better than B?} with true or false for each.',
    },
  ];
}

export function parseJudgeReply(reply: string): JudgeVerdict {
  const json = /\{[\s\S]*\}/.exec(reply)?.[0];
  let value: unknown;
  try {
    value = json ? JSON.parse(json) : undefined;
  } catch {
    value = undefined;
  }
  const v = value as Partial<Record<keyof JudgeVerdict, unknown>> | undefined;
  if (!v || typeof v.correct !== 'boolean' || typeof v.consistent !== 'boolean' || typeof v.better !== 'boolean')
    throw new Error(`cannot read the judge's verdict in the reply: ${JSON.stringify(reply.slice(0, 200))}`);
  return { correct: v.correct, consistent: v.consistent, better: v.better };
}

/** Keep a pair only when all three checks pass (TPO's filter). */
export async function judgePair(
  client: ChatClient, captions: Caption[], question: string, preferred: string, dispreferred: string,
): Promise<JudgeVerdict & { keep: boolean }> {
  const verdict = parseJudgeReply(await client.complete(judgePrompt(captions, question, preferred, dispreferred)));
  return { ...verdict, keep: verdict.correct && verdict.consistent && verdict.better && preferred.trim() !== dispreferred.trim() };
}
