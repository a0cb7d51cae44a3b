// lib/tpo/questions.ts: questions and judgements for real videos through an LLM on 127.0.0.1 (this test's server).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { ChatClient } from '../../lib/tpo/llm.js';
import { checkCaptions, generateQuestion, judgePair, parseJudgeReply, parseQuestionReply } from '../../lib/tpo/questions.js';

const CAPTIONS = [
  { start: 0, end: 4, text: 'a man opens a door' },
  { start: 4, end: 9, text: 'he picks up a red cup' },
];

describe('LLM questions and judge', function () {
  this.timeout(20_000);
  let server: Server;
  let replies: string[] = [];
  let prompts: string[] = [];
  let client: ChatClient;
  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        prompts.push((JSON.parse(body) as { messages: { content: string }[] }).messages.at(-1)!.content);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ choices: [{ message: { content: replies.shift() ?? 'None' } }] }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = new ChatClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, model: 'm', retries: 0 });
  });
  after(() => new Promise((resolve) => server.close(resolve)));
  beforeEach(() => {
    replies = [];
    prompts = [];
  });

  it('asks from the captions and reads the question, the answer and the span', async () => {
    replies = ['Question: What color is the cup?\nAnswer: red'];
    const q = await generateQuestion(client, 'v.mp4', CAPTIONS, 'localized', CAPTIONS[1]);
    assert.deepEqual(q, { question: 'What color is the cup?', answer: 'red', span: [4, 9] });
    assert.match(prompts[0]!, /\[4\.0s - 9\.0s\] he picks up a red cup/);
    assert.match(prompts[0]!, /between 4\.0s and 9\.0s only/);
  });

  it('takes "None" as no question, and refuses a reply it cannot read', async () => {
    replies = ['None.'];
    assert.equal(await generateQuestion(client, 'v.mp4', CAPTIONS, 'comprehensive'), null);
    assert.throws(() => parseQuestionReply('I like this video'), /cannot read a question and an answer/);
  });

  it('judges with TPO three checks', async () => {
    replies = ['{"correct": true, "consistent": true, "better": true}', 'Sure! {"correct": true, "consistent": false, "better": true}'];
    assert.deepEqual(await judgePair(client, CAPTIONS, 'What color?', 'red', 'blue'), { correct: true, consistent: true, better: true, keep: true });
    assert.equal((await judgePair(client, CAPTIONS, 'What color?', 'red', 'blue')).keep, false);
    assert.throws(() => parseJudgeReply('yes yes no'), /cannot read the judge's verdict/);
  });

  it('refuses videos without captions and captions outside the video', () => {
    assert.throws(() => checkCaptions('v.mp4', []), /v\.mp4: has no captions/);
    assert.throws(() => checkCaptions('v.mp4', [{ start: 3, end: 12, text: 'x' }], 10), /caption 0 spans \[3, 12\], outside the video/);
  });
});
