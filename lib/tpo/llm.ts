// A client for an OpenAI-compatible chat-completions endpoint (question generation and judging for real videos):
// timeouts, retries with exponential back-off on network errors, 429 and 5xx (honouring Retry-After), a limit on
// requests in flight, and errors that say which request failed and why.
import { z } from 'zod';

import { parse } from '../validate.js';

export const LlmConfig = z.strictObject({
  /** e.g. http://127.0.0.1:8000/v1 (the client posts to `${baseUrl}/chat/completions`). */
  baseUrl: z.string().url(),
  model: z.string().min(1),
  /** The API key, or the name of an environment variable holding it (`env:OPENAI_API_KEY`). */
  apiKey: z.string().optional(),
  timeoutMs: z.int().positive().default(60_000),
  retries: z.int().nonnegative().default(4),
  backoffMs: z.int().nonnegative().default(500),
  concurrency: z.int().positive().default(4),
  temperature: z.number().min(0).default(0),
  maxTokens: z.int().positive().default(256),
});
export type LlmConfig = z.input<typeof LlmConfig>;

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export class LlmError extends Error {
  readonly code = 'ERR_TPO_LLM';
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = 'LlmError';
  }
}

const Reply = z.object({
  choices: z.array(z.object({ message: z.object({ content: z.string().nullable() }) })).min(1),
});

/** Waits `ms`, or less if the signal aborts. */
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class ChatClient {
  readonly config: z.output<typeof LlmConfig>;
  #inFlight = 0;
  #waiting: (() => void)[] = [];

  constructor(config: LlmConfig) {
    this.config = parse(LlmConfig, config, 'llm config');
  }

  #key(): string | undefined {
    const key = this.config.apiKey;
    if (!key?.startsWith('env:')) return key;
    const value = process.env[key.slice(4)];
    if (!value) throw new LlmError(`llm config: apiKey names ${key.slice(4)}, which is not set`);
    return value;
  }

  async #slot(): Promise<() => void> {
    while (this.#inFlight >= this.config.concurrency) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#inFlight++;
    return () => {
      this.#inFlight--;
      this.#waiting.shift()?.();
    };
  }

  /** The assistant's reply to `messages`. Retries what may pass (network, timeout, 429, 5xx, a malformed reply). */
  async complete(messages: ChatMessage[], options: { temperature?: number; maxTokens?: number } = {}): Promise<string> {
    const url = `${this.config.baseUrl.replace(/\/+$/, '')}/chat/completions`;
    const key = this.#key();
    const body = JSON.stringify({
      model: this.config.model, messages,
      temperature: options.temperature ?? this.config.temperature, max_tokens: options.maxTokens ?? this.config.maxTokens,
    });
    const release = await this.#slot();
    try {
      let last: LlmError | undefined;
      for (let attempt = 0; attempt <= this.config.retries; attempt++) {
        if (attempt > 0) await sleep(this.#delay(attempt, last));
        let response: Response;
        try {
          response = await fetch(url, {
            method: 'POST', body, signal: AbortSignal.timeout(this.config.timeoutMs),
            headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
          });
        } catch (error) {
          const timedOut = (error as Error).name === 'TimeoutError';
          last = new LlmError(`${url}: ${timedOut ? `no reply within ${this.config.timeoutMs} ms` : (error as Error).message}`);
          continue;
        }
        const text = await response.text().catch(() => '');
        if (response.status === 429 || response.status >= 500) {
          last = Object.assign(new LlmError(`${url}: HTTP ${response.status} ${text.slice(0, 200)}`, response.status), {
            retryAfter: Number(response.headers.get('retry-after')) || undefined,
          });
          continue;
        }
        if (!response.ok) throw new LlmError(`${url}: HTTP ${response.status} ${text.slice(0, 200)}`, response.status);
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          last = new LlmError(`${url}: the reply is not JSON: ${text.slice(0, 200)}`);
          continue;
        }
        const reply = Reply.safeParse(json);
        if (!reply.success) {
          last = new LlmError(`${url}: the reply has no choices[0].message.content: ${text.slice(0, 200)}`);
          continue;
        }
        return reply.data.choices[0]!.message.content ?? '';
      }
      throw new LlmError(`${last?.message ?? url} (gave up after ${this.config.retries + 1} attempts)`, last?.status);
    } finally {
      release();
    }
  }

  /** Exponential back-off with jitter, or the server's Retry-After (seconds) when it gives one. */
  #delay(attempt: number, last?: LlmError & { retryAfter?: number }): number {
    if (last?.retryAfter) return last.retryAfter * 1000;
    const base = this.config.backoffMs * 2 ** (attempt - 1);
    return base / 2 + Math.random() * (base / 2);
  }
}
