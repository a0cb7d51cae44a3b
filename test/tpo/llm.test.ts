// lib/tpo/llm.ts against a chat-completions server on 127.0.0.1 that this test runs (bounded, local only).
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { ChatClient } from '../../lib/tpo/llm.js';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

describe('ChatClient', function () {
  this.timeout(30_000);
  let server: Server;
  let handler: Handler;
  let baseUrl: string;
  let requests = 0;
  let inFlight = 0;
  let maxInFlight = 0;

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        requests++;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        res.on('close', () => inFlight--);
        handler(req, body, res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  after(() => new Promise((resolve) => server.close(resolve)));
  beforeEach(() => {
    requests = 0;
    maxInFlight = 0;
  });

  const reply = (res: ServerResponse, content: string) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content } }] }));
  };
  const client = (extra = {}) => new ChatClient({ baseUrl, model: 'judge', backoffMs: 10, retries: 3, ...extra });

  it('posts the chat request and returns the reply', async () => {
    let seen: { model: string; messages: unknown[]; max_tokens: number } | undefined;
    let auth: string | undefined;
    handler = (req, body, res) => {
      seen = JSON.parse(body);
      auth = req.headers.authorization;
      assert.equal(req.url, '/v1/chat/completions');
      reply(res, 'Question: What moves first?\nAnswer: the red circle');
    };
    const text = await client({ apiKey: 'k' }).complete([{ role: 'user', content: 'captions...' }], { maxTokens: 64 });
    assert.equal(text, 'Question: What moves first?\nAnswer: the red circle');
    assert.equal(seen!.model, 'judge');
    assert.equal(seen!.max_tokens, 64);
    assert.equal(auth, 'Bearer k');
  });

  it('retries 5xx, 429 (honouring Retry-After) and malformed replies, then succeeds', async () => {
    const script: ((res: ServerResponse) => void)[] = [
      (res) => res.writeHead(503).end('busy'),
      (res) => res.writeHead(429, { 'retry-after': '0' }).end('slow down'),
      (res) => res.writeHead(200).end('{"not": "a chat reply"}'),
      (res) => reply(res, 'ok'),
    ];
    handler = (_req, _body, res) => script.shift()!(res);
    assert.equal(await client().complete([{ role: 'user', content: 'x' }]), 'ok');
    assert.equal(requests, 4);
  });

  it('gives up after its retries, saying why; a 4xx is not retried', async () => {
    handler = (_req, _body, res) => res.writeHead(500).end('boom');
    await assert.rejects(client({ retries: 2 }).complete([{ role: 'user', content: 'x' }]), {
      code: 'ERR_TPO_LLM', message: /HTTP 500 boom \(gave up after 3 attempts\)/,
    });
    requests = 0;
    handler = (_req, _body, res) => res.writeHead(401).end('bad key');
    await assert.rejects(client().complete([{ role: 'user', content: 'x' }]), { message: /HTTP 401 bad key/, status: 401 } as never);
    assert.equal(requests, 1);
  });

  it('times out a server that does not answer', async () => {
    handler = () => undefined;  // never replies; the client aborts
    await assert.rejects(client({ timeoutMs: 200, retries: 1 }).complete([{ role: 'user', content: 'x' }]), /no reply within 200 ms/);
  });

  it('caps a Retry-After of a day at maxRetryWaitMs, and says so', async () => {
    const script: ((res: ServerResponse) => void)[] = [
      (res) => res.writeHead(429, { 'retry-after': '86400' }).end('come back tomorrow'),
      (res) => reply(res, 'ok'),
    ];
    handler = (_req, _body, res) => script.shift()!(res);
    const notices: string[] = [];
    const c = new ChatClient({ baseUrl, model: 'judge', retries: 1, maxRetryWaitMs: 20 }, { notice: (m) => notices.push(m) });
    assert.equal(await c.complete([{ role: 'user', content: 'x' }]), 'ok');
    assert.equal(requests, 2);
    assert.equal(notices.length, 1);
    assert.match(notices[0]!, /asked to wait 86400 s .*waiting 0\.02 s instead \(llm\.maxRetryWaitMs\)/);
  });

  it('cuts off a reply that never ends: by size (maxReplyBytes) and by time (timeoutMs)', async () => {
    const endless = (res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"choices": [{"message": {"content": "');
      const timer = setInterval(() => res.write('x'.repeat(64 * 1024)), 1);
      res.on('close', () => clearInterval(timer));
    };
    handler = (_req, _body, res) => endless(res);
    await assert.rejects(client({ maxReplyBytes: 1 << 20, retries: 0 }).complete([{ role: 'user', content: 'x' }]),
      { code: 'ERR_TPO_LLM', message: /the reply is longer than 1048576 bytes \(llm\.maxReplyBytes\)/ });
    // A reply that trickles forever, a byte at a time: the request's time limit covers the body.
    handler = (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const timer = setInterval(() => res.write(' '), 5);
      res.on('close', () => clearInterval(timer));
    };
    await assert.rejects(client({ timeoutMs: 300, retries: 0 }).complete([{ role: 'user', content: 'x' }]), /no reply within 300 ms/);
  });

  it('keeps at most `concurrency` requests in flight', async () => {
    handler = (_req, _body, res) => setTimeout(() => reply(res, 'ok'), 50);
    const c = client({ concurrency: 2 });
    await Promise.all(Array.from({ length: 6 }, () => c.complete([{ role: 'user', content: 'x' }])));
    assert.equal(requests, 6);
    assert.equal(maxInFlight, 2);
  });

  it('refuses a config that names an unset key variable', async () => {
    delete process.env.TPO_TEST_NO_SUCH_KEY;
    await assert.rejects(client({ apiKey: 'env:TPO_TEST_NO_SUCH_KEY' }).complete([{ role: 'user', content: 'x' }]), /TPO_TEST_NO_SUCH_KEY, which is not set/);
    assert.throws(() => new ChatClient({ baseUrl: 'not a url', model: 'm' }), /llm config: baseUrl/);
  });
});
