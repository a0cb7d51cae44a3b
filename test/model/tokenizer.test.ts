// lib/model/tokenizer.ts against transformers: a tiny Qwen2-style tokenizer (scripts/fixtures/make_tokenizer.py)
// and what AutoTokenizer made of it, compared exactly.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { type ChatMessage, Tokenizer } from '../../lib/model/tokenizer.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';

const DIR = join(FIXTURES, 'tokenizer', 'qwen2-tiny');

interface Reference {
  vocab_size: number;
  special: {
    eos: [string, number]; pad: [string, number]; bos: [null, null]; additional: string[]; all_special_ids: number[];
  };
  added_tokens: Record<string, number>;
  encodings: { text: string; ids: number[]; tokens: string[]; decoded: string; decoded_skip_special: string }[];
  chats: { name: string; messages: ChatMessage[]; add_generation_prompt: boolean; text: string; ids: number[] }[];
  templates: { name: string; template: string; messages: ChatMessage[]; add_generation_prompt: boolean; text: string }[];
}

const ref = JSON.parse(readFileSync(join(DIR, 'reference.json'), 'utf8')) as Reference;
const json = () => JSON.parse(readFileSync(join(DIR, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
const config = () => JSON.parse(readFileSync(join(DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;

describe('Tokenizer', () => {
  let tok: Tokenizer;
  before(async () => {
    tok = await Tokenizer.load(DIR);
  });

  describe('loading a Qwen2-style tokenizer.json + tokenizer_config.json', () => {
    it('has the vocabulary and special tokens transformers reports', () => {
      assert.equal(tok.vocabSize, ref.vocab_size);
      assert.deepEqual(tok.eos, { token: ref.special.eos[0], id: ref.special.eos[1] });
      assert.deepEqual(tok.pad, { token: ref.special.pad[0], id: ref.special.pad[1] });
      assert.equal(tok.bos, undefined); // Qwen2 has no BOS
      assert.deepEqual([...tok.specialIds].sort((a, b) => a - b), ref.special.all_special_ids);
      assert.equal(tok.modelMaxLength, 32768);
    });

    it('lists the added tokens, special or not', () => {
      assert.deepEqual(
        tok.addedTokens.map((t) => [t.content, t.id, t.special]),
        Object.entries(ref.added_tokens).map(([content, id]) => [content, id, content !== '<tool_call>']),
      );
      assert.equal(tok.tokenToId('<|im_start|>'), ref.added_tokens['<|im_start|>']);
      assert.equal(tok.idToToken(ref.added_tokens['<|im_end|>']!), '<|im_end|>');
      assert.equal(tok.tokenToId('not-a-token'), undefined);
    });
  });

  describe('encode and decode', () => {
    for (const [i, e] of ref.encodings.entries()) {
      it(`matches transformers on ${JSON.stringify(e.text).slice(0, 50)} (#${i})`, () => {
        const ids = tok.encode(e.text, { addSpecialTokens: false });
        assert.deepEqual(ids, e.ids);
        assert.deepEqual(ids.map((id) => tok.idToToken(id)), e.tokens);
        assert.equal(tok.decode(e.ids), e.decoded);
        assert.equal(tok.decode(e.ids, { skipSpecialTokens: true }), e.decoded_skip_special);
      });
    }

    it("reads merges written as 'a b' strings, as older tokenizer.json files (Qwen2's own) have them", () => {
      const j = json() as { model: { merges: [string, string][] | string[] } };
      j.model.merges = (j.model.merges as [string, string][]).map(([a, b]) => `${a} ${b}`);
      const old = Tokenizer.fromJSON(j, config());
      for (const e of ref.encodings) assert.deepEqual(old.encode(e.text, { addSpecialTokens: false }), e.ids, e.text);
    });

    it('adds no special tokens for Qwen2 even when asked (its post-processor adds none)', () => {
      assert.deepEqual(tok.encode('Hello world'), tok.encode('Hello world', { addSpecialTokens: false }));
    });

    it('accepts typed arrays, and refuses ids outside the vocabulary', () => {
      const ids = tok.encode('The red circle');
      assert.equal(tok.decode(Int32Array.from(ids)), 'The red circle');
      assert.throws(() => tok.decode([5, -200, 6]), { name: 'RangeError', code: 'ERR_TPO_ARGUMENT', message: /id -200 is not in the vocabulary/ });
      assert.throws(() => tok.decode([tok.vocabSize]), /is not in the vocabulary \(0\.\.703\)/);
    });

    it('validates its arguments', () => {
      assert.throws(() => tok.encode(42 as never), { name: 'ValidationError', message: /^Tokenizer\.encode: text/ });
      assert.throws(() => tok.encode('x', { addSpecial: true } as never), /Tokenizer\.encode: options/);
    });
  });

  describe('chat templates', () => {
    for (const c of ref.chats) {
      it(`renders Qwen2's template as transformers does: ${c.name}`, () => {
        const options = { addGenerationPrompt: c.add_generation_prompt };
        assert.equal(tok.applyChatTemplate(c.messages, options), c.text);
        assert.deepEqual(tok.encodeChat(c.messages, options), c.ids);
      });
    }

    for (const c of ref.templates) {
      it(`renders other templates as transformers does: ${c.name}`, () => {
        const text = tok.applyChatTemplate(c.messages, { chatTemplate: c.template, addGenerationPrompt: c.add_generation_prompt });
        assert.equal(text, c.text);
      });
    }

    it('puts the special tokens in the context, and lets the context override them', () => {
      const template = '{{ eos_token }}|{{ pad_token }}|{{ bos_token }}|{{ additional_special_tokens | join(",") }}|{{ extra }}';
      const messages = [{ role: 'user', content: 'x' }];
      assert.equal(tok.applyChatTemplate(messages, { chatTemplate: template, context: { extra: 7 } }), '<|im_end|>|<|endoftext|>||<|im_start|>,<|im_end|>|7');
      assert.equal(tok.applyChatTemplate(messages, { chatTemplate: template, context: { eos_token: 'E' } }).split('|')[0], 'E');
    });

    it('reports a template error, a missing template and bad messages clearly', () => {
      const messages = [{ role: 'user', content: 'x' }];
      assert.throws(
        () => tok.applyChatTemplate(messages, { chatTemplate: "{{ raise_exception('roles must alternate') }}" }),
        { code: 'ERR_TPO_ARGUMENT', message: /the chat template failed: .*roles must alternate/ },
      );
      assert.throws(() => tok.applyChatTemplate(messages, { chatTemplate: '{% for %}' }), /does not parse/);
      assert.throws(() => tok.applyChatTemplate([{ role: 'user' } as never]), /applyChatTemplate: messages: 0\.content/);
      assert.throws(() => tok.applyChatTemplate([]), /applyChatTemplate: messages/);
      const bare = Tokenizer.fromJSON(json(), { ...config(), chat_template: undefined });
      assert.throws(() => bare.applyChatTemplate(messages), /has no chat_template/);
    });

    it('chooses among named templates as transformers does (tool_use when tools are given)', () => {
      const named = Tokenizer.fromJSON(json(), {
        ...config(),
        chat_template: [
          { name: 'default', template: 'D:{{ messages[0].content }}' },
          { name: 'tool_use', template: 'T:{{ tools | length }}' },
          { name: 'brief', template: 'B' },
        ],
      });
      const messages = [{ role: 'user', content: 'hi' }];
      assert.deepEqual(named.chatTemplates, ['default', 'tool_use', 'brief']);
      assert.equal(named.applyChatTemplate(messages), 'D:hi');
      assert.equal(named.applyChatTemplate(messages, { tools: [{}, {}] }), 'T:2');
      assert.equal(named.applyChatTemplate(messages, { chatTemplate: 'brief' }), 'B');
    });
  });

  describe('loading errors name the file and the field', () => {
    let dir: string;
    beforeEach(() => {
      dir = tempDir();
    });
    afterEach(() => removeDir(dir));

    const write = (name: string, value: unknown) =>
      writeFileSync(join(dir, name), typeof value === 'string' ? value : JSON.stringify(value));

    it('a missing tokenizer.json', async () => {
      await assert.rejects(Tokenizer.load(dir), { code: 'ERR_TPO_ARGUMENT', message: new RegExp(`^${join(dir, 'tokenizer.json')}: cannot read`) });
    });

    it('a tokenizer.json that is not JSON', async () => {
      write('tokenizer.json', '{"model": ');
      await assert.rejects(Tokenizer.load(dir), { message: new RegExp(`^${join(dir, 'tokenizer.json')}: not valid JSON`) });
    });

    it('a tokenizer.json without a model', async () => {
      write('tokenizer.json', { version: '1.0' });
      await assert.rejects(Tokenizer.load(dir), { name: 'ValidationError', message: new RegExp(`^${join(dir, 'tokenizer.json')}: model: `) });
    });

    it('a model @huggingface/tokenizers does not know', async () => {
      write('tokenizer.json', { ...json(), model: { type: 'Nonsense' } });
      await assert.rejects(Tokenizer.load(dir), {
        message: `${join(dir, 'tokenizer.json')}: cannot build the tokenizer: Unknown TokenizerModel type: Nonsense`,
      });
    });

    it('a mistyped config field', async () => {
      write('tokenizer.json', json());
      write('tokenizer_config.json', { ...config(), chat_template: 42 });
      await assert.rejects(Tokenizer.load(dir), { name: 'ValidationError', message: `${join(dir, 'tokenizer_config.json')}: chat_template: must be a template string or a list of {name, template}` });
    });

    it('a special token that is not in the vocabulary', async () => {
      write('tokenizer.json', json());
      write('tokenizer_config.json', { ...config(), eos_token: '</s>' });
      await assert.rejects(
        Tokenizer.load(dir),
        { message: `${join(dir, 'tokenizer_config.json')}: eos_token: '</s>' is not in the vocabulary` },
      );
    });
  });

  describe('other layouts', () => {
    let dir: string;
    beforeEach(() => {
      dir = tempDir();
      mkdirSync(dir, { recursive: true });
      copyFileSync(join(DIR, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    });
    afterEach(() => removeDir(dir));

    it('chat_template.jinja beside the config wins over the config (newer transformers layout)', async () => {
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config()));
      writeFileSync(join(dir, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}');
      const t = await Tokenizer.load(dir);
      assert.equal(t.applyChatTemplate([{ role: 'user', content: 'hi' }]), '[user]hi');
    });

    it('special tokens written as AddedToken objects (older configs), and no config at all', async () => {
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({
        ...config(), eos_token: { __type: 'AddedToken', content: '<|im_end|>', lstrip: false }, pad_token: null,
      }));
      const t = await Tokenizer.load(dir);
      assert.deepEqual(t.eos, { token: '<|im_end|>', id: 702 });
      assert.equal(t.pad, undefined);
      removeDir(join(dir, 'tokenizer_config.json'));
      const plain = await Tokenizer.load(dir);
      assert.equal(plain.eos, undefined);
      assert.deepEqual(plain.encode('Hello world'), ref.encodings[0]!.ids);
    });
  });
});
