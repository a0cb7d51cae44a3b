// A client for an OpenAI-compatible chat-completions endpoint (question generation and judging for real videos):
// timeouts, retries with exponential back-off on network errors, 429 and 5xx (honouring Retry-After up to a cap),
// a limit on requests in flight, a cap on a reply's size, and errors that say which request failed and why.
import { z } from 'zod';

import { parse } from '../validate.js';

export const LlmConfig = z.strictObject({
  /** e.g. http://127.0.0.1:8000/v1 (the client posts to `${baseUrl}/chat/completions`). */
  baseUrl: z.string().url(),
  model: z.string().min(1),
  /** The API key, or the name of an environment variable holding it (`env:OPENAI_API_KEY`). */
  apiKey: z.string().optional(),
  /** Milliseconds for a whole request, the reply's body included (a reply that never ends is cut off). */
  timeoutMs: z.int().positive().default(60_000),
  retries: z.int().nonnegative().default(4),
  backoffMs: z.int().nonnegative().default(500),
  concurrency: z.int().positive().default(4),
  temperature: z.number().min(0).default(0),
  maxTokens: z.int().positive().default(256),
  /** The longest wait a Retry-After header may ask for (429 with Retry-After: 86400 would sleep a day per retry);
   * longer requests wait this long, and a notice on stderr says so. */
  maxRetryWaitMs: z.int().nonnegative().default(60_000),
  /** The largest reply body read; a longer one (an endpoint that streams without end) is an error. */
  maxReplyBytes: z.int().positive().default(1 << 20),
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

/** Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110); undefined when absent or unreadable. */
function retryAfterSeconds(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = /^\s*\d+(\.\d+)?\s*$/.test(header) ? Number(header) : (Date.parse(header) - Date.now()) / 1000;
  return Number.isFinite(seconds) && seconds > 0 ? seconds : undefined;
}

/** Waits `ms`. */
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class ChatClient {
  readonly config: z.output<typeof LlmConfig>;
  #inFlight = 0;
  #waiting: (() => void)[] = [];

  readonly #notice: (message: string) => void;

  /** `notice` hears what the client does that a user waits on (a capped Retry-After); default: stderr. */
  constructor(config: LlmConfig, options: { notice?: (message: string) => void } = {}) {
    this.config = parse(LlmConfig, config, 'llm config');
    this.#notice = options.notice ?? ((message) => process.stderr.write(`tpo: ${message}\n`));
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
        if (attempt > 0) await sleep(this.#delay(attempt, url, last));
        let response: Response;
        let text: string;
        const signal = AbortSignal.timeout(this.config.timeoutMs);
        try {
          response = await fetch(url, {
            method: 'POST', body, signal,
            headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
          });
          text = await this.#body(response, url);
        } catch (error) {
          if (error instanceof LlmError) throw error;
          const timedOut = signal.aborted || (error as Error).name === 'TimeoutError';
          last = new LlmError(`${url}: ${timedOut ? `no reply within ${this.config.timeoutMs} ms (llm.timeoutMs, the whole reply included)` : (error as Error).message}`);
          continue;
        }
        if (response.status === 429 || response.status >= 500) {
          last = Object.assign(new LlmError(`${url}: HTTP ${response.status} ${text.slice(0, 200)}`, response.status), {
            retryAfter: retryAfterSeconds(response.headers.get('retry-after')),
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

  /** The reply's body as text, read up to maxReplyBytes (the request's timeout bounds the time). */
  async #body(response: Response, url: string): Promise<string> {
    if (!response.body) return '';
    const limit = this.config.maxReplyBytes;
    const declared = Number(response.headers.get('content-length'));
    const tooLong = () => new LlmError(`${url}: the reply is longer than ${limit} bytes (llm.maxReplyBytes)`, response.status);
    if (declared > limit) {
      await response.body.cancel().catch(() => undefined);
      throw tooLong();
    }
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      if (bytes > limit) {
        await reader.cancel().catch(() => undefined);
        throw tooLong();
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** Exponential back-off with jitter, or the server's Retry-After (seconds) when it gives one, up to the cap. */
  #delay(attempt: number, url: string, last?: LlmError & { retryAfter?: number }): number {
    if (last?.retryAfter) {
      const asked = last.retryAfter * 1000;
      const cap = this.config.maxRetryWaitMs;
      if (asked <= cap) return asked;
      this.#notice(`${url}: the server asked to wait ${last.retryAfter} s before retrying (Retry-After); ` +
        `waiting ${cap / 1000} s instead (llm.maxRetryWaitMs)`);
      return cap;
    }
    const base = this.config.backoffMs * 2 ** (attempt - 1);
    return base / 2 + Math.random() * (base / 2);
  }
}
