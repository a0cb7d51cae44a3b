// Hugging Face tokenizers from tokenizer.json + tokenizer_config.json, as transformers loads them: the tokenizer
// pipeline runs in @huggingface/tokenizers (pure JS: normalizer, pre-tokenizer, BPE, decoder, added tokens), chat
// templates render with @huggingface/jinja in the context transformers' apply_chat_template gives them.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { Template } from '@huggingface/jinja';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { z } from 'zod';

import { checkInputDir, checkInputFile, PathError } from '../paths.js';
import { parse } from '../validate.js';

/** One chat turn. Templates may read other fields (name, tool_calls, …), so they pass through untouched. */
export interface ChatMessage {
  role: string;
  content: string;
  [field: string]: unknown;
}

export interface SpecialToken {
  token: string;
  id: number;
}

export interface AddedTokenInfo {
  id: number;
  content: string;
  /** Special tokens are dropped by `decode(ids, { skipSpecialTokens: true })`; other added tokens are kept. */
  special: boolean;
}

// Only what tpo reads is checked; the rest of the pipeline is @huggingface/tokenizers' to judge (it throws on
// component types it does not know, and load() names the file then).
const TokenizerJson = z.looseObject({
  model: z.looseObject({ type: z.string().optional() }),
  added_tokens: z
    .array(z.looseObject({ id: z.int().nonnegative(), content: z.string(), special: z.boolean().optional() }))
    .optional(),
});

// transformers writes a special token as a string, or (older files) as a serialized AddedToken object.
const TokenValue = z.union([z.string(), z.looseObject({ content: z.string() })]).nullish();

const NamedTemplates = z.array(z.strictObject({ name: z.string(), template: z.string() }));

const TokenizerConfig = z.looseObject({
  bos_token: TokenValue,
  eos_token: TokenValue,
  unk_token: TokenValue,
  pad_token: TokenValue,
  sep_token: TokenValue,
  cls_token: TokenValue,
  mask_token: TokenValue,
  additional_special_tokens: z.array(z.union([z.string(), z.looseObject({ content: z.string() })])).optional(),
  chat_template: z
    .union([z.string(), NamedTemplates], { error: 'must be a template string or a list of {name, template}' })
    .nullish(),
  model_max_length: z.number().optional(),
  clean_up_tokenization_spaces: z.boolean().optional(),
});
type TokenizerConfig = z.output<typeof TokenizerConfig>;

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

const Messages = z.array(z.looseObject({ role: z.string(), content: z.string() })).min(1);

const ChatOptions = z.strictObject({
  /** Append the assistant header so the model's answer comes next (transformers' add_generation_prompt). */
  addGenerationPrompt: z.boolean().default(false),
  /** A template name from tokenizer_config.json's named templates, or a template string; default: the config's. */
  chatTemplate: z.string().optional(),
  /** Extra variables for the template (transformers' **kwargs); they override the special tokens. */
  context: z.record(z.string(), z.unknown()).optional(),
  tools: z.array(z.unknown()).optional(),
  documents: z.array(z.unknown()).optional(),
});
export type ChatOptions = z.input<typeof ChatOptions>;

const EncodeOptions = z.strictObject({
  /** Add the special tokens the tokenizer's post-processor adds (a BOS for Llama; nothing for Qwen2), as
   * transformers does by default. Text rendered from a chat template already holds them: pass false. */
  addSpecialTokens: z.boolean().default(true),
});
export type EncodeOptions = z.input<typeof EncodeOptions>;

const DecodeOptions = z.strictObject({ skipSpecialTokens: z.boolean().default(false) });
export type DecodeOptions = z.input<typeof DecodeOptions>;

const VideoMarkupSchema = z.strictObject({
  before: z.string().default(''),
  after: z.string().default(''),
  separator: z.string().default('\n'),
});
/** Tokenizer.setVideoMarkup's text around a video placeholder. */
export type VideoMarkup = z.input<typeof VideoMarkupSchema>;

/** An Error with tpo's code for bad input (a file, a field, an argument). */
function argumentError(message: string, Kind: ErrorConstructor = Error): Error {
  return Object.assign(new Kind(message), { code: 'ERR_TPO_ARGUMENT' });
}

function tokenString(value: z.output<typeof TokenValue>): string | undefined {
  return value == null ? undefined : typeof value === 'string' ? value : value.content;
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    checkInputFile(path, 'a tokenizer file');
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw argumentError(`${path}: cannot read: ${error instanceof PathError ? error.reason : (error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw argumentError(`${path}: not valid JSON: ${(error as Error).message}`);
  }
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    checkInputFile(path, 'a tokenizer file');
    return await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof PathError && error.reason.startsWith('ENOENT')) return undefined;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export class Tokenizer {
  readonly vocabSize: number;
  readonly bos?: SpecialToken;
  readonly eos?: SpecialToken;
  readonly pad?: SpecialToken;
  readonly unk?: SpecialToken;
  /** Tokens outside the BPE vocabulary (tokenizer.json's added_tokens), in id order. */
  readonly addedTokens: readonly AddedTokenInfo[];
  /** Ids of every special token: the named ones, additional_special_tokens and added tokens marked special. */
  readonly specialIds: ReadonlySet<number>;
  /** tokenizer_config.json's model_max_length, when it names one. */
  readonly modelMaxLength?: number;
  readonly #tokenizer: HfTokenizer;
  readonly #templates: Map<string, string>;
  readonly #templateContext: Readonly<Record<string, unknown>>;
  readonly #compiled = new Map<string, Template>();

  private constructor(tokenizer: HfTokenizer, config: TokenizerConfig, templates: Map<string, string>, source: string) {
    this.#tokenizer = tokenizer;
    this.#templates = templates;
    this.vocabSize = tokenizer.get_vocab(true).size;
    const added = [...tokenizer.get_added_tokens_decoder().entries()].sort(([a], [b]) => a - b);
    this.addedTokens = added.map(([id, t]) => ({ id, content: t.content, special: t.special }));

    const special = (key: (typeof SPECIAL_KEYS)[number]): SpecialToken | undefined => {
      const token = tokenString(config[key]);
      if (token === undefined) return undefined;
      const id = tokenizer.token_to_id(token);
      if (id === undefined) throw argumentError(`${source}: ${key}: '${token}' is not in the vocabulary`);
      return { token, id };
    };
    this.bos = special('bos_token');
    this.eos = special('eos_token');
    this.pad = special('pad_token');
    this.unk = special('unk_token');

    // What transformers puts in a chat template's context: every special token it has, by attribute name.
    const context: Record<string, unknown> = {};
    const ids = new Set(this.addedTokens.filter((t) => t.special).map((t) => t.id));
    for (const key of SPECIAL_KEYS) {
      const token = special(key);
      if (token) (context[key] = token.token), ids.add(token.id);
    }
    const additional = (config.additional_special_tokens ?? []).map((t) => (typeof t === 'string' ? t : t.content));
    if (additional.length) context['additional_special_tokens'] = additional;
    for (const token of additional) {
      const id = tokenizer.token_to_id(token);
      if (id !== undefined) ids.add(id);
    }
    this.#templateContext = context;
    this.specialIds = ids;
    if (config.model_max_length !== undefined) this.modelMaxLength = config.model_max_length;
  }

  /**
   * Loads `tokenizer.json` and `tokenizer_config.json` from a model folder. A `chat_template.jinja` beside them
   * (transformers' newer layout) takes precedence over the config's `chat_template`, as in transformers.
   */
  static async load(dir: string): Promise<Tokenizer> {
    parse(z.string().min(1), dir, 'Tokenizer.load: dir');
    checkInputDir(dir, 'a tokenizer folder');
    const jsonPath = join(dir, 'tokenizer.json');
    const configPath = join(dir, 'tokenizer_config.json');
    const [json, config, jinja] = await Promise.all([
      readJson(jsonPath),
      readOptional(configPath).then((text) => (text === undefined ? {} : readJson(configPath))),
      readOptional(join(dir, 'chat_template.jinja')),
    ]);
    return Tokenizer.fromJSON(json, config, { chatTemplate: jinja, jsonName: jsonPath, configName: configPath });
  }

  /** A tokenizer from already-parsed tokenizer.json and tokenizer_config.json objects (e.g. made in memory). */
  static fromJSON(
    tokenizerJson: unknown,
    tokenizerConfig: unknown = {},
    names: { jsonName?: string; configName?: string; chatTemplate?: string | undefined } = {},
  ): Tokenizer {
    const jsonName = names.jsonName ?? 'tokenizer.json';
    const configName = names.configName ?? 'tokenizer_config.json';
    const json = parse(TokenizerJson, tokenizerJson, jsonName);
    const config = parse(TokenizerConfig, tokenizerConfig, configName);
    // @huggingface/tokenizers reads the config's special tokens as plain strings: hand it the normalised form.
    const plainConfig: Record<string, unknown> = { ...config };
    for (const key of SPECIAL_KEYS) {
      const token = tokenString(config[key]);
      if (token === undefined) delete plainConfig[key];
      else plainConfig[key] = token;
    }
    let tokenizer: HfTokenizer;
    try {
      tokenizer = new HfTokenizer(json, plainConfig);
    } catch (error) {
      throw argumentError(`${jsonName}: cannot build the tokenizer: ${(error as Error).message}`);
    }
    const templates = new Map<string, string>();
    const configured = config.chat_template;
    if (typeof configured === 'string') templates.set('default', configured);
    else for (const { name, template } of configured ?? []) templates.set(name, template);
    if (names.chatTemplate !== undefined) templates.set('default', names.chatTemplate);
    return new Tokenizer(tokenizer, config, templates, configName);
  }

  /** Token ids of `text`; added tokens (e.g. `<|im_start|>`) written in the text become their ids. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const { addSpecialTokens } = parse(EncodeOptions, options, 'Tokenizer.encode: options');
    if (typeof text !== 'string') parse(z.string(), text, 'Tokenizer.encode: text');
    return this.#tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  /** The text of `ids`. Ids outside the vocabulary (such as the -200 image placeholder) are an error. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const { skipSpecialTokens } = parse(DecodeOptions, options, 'Tokenizer.decode: options');
    const list = Array.from(ids);
    const bad = list.find((id) => !Number.isInteger(id) || id < 0 || id >= this.vocabSize);
    if (bad !== undefined) {
      throw argumentError(`Tokenizer.decode: id ${bad} is not in the vocabulary (0..${this.vocabSize - 1})`, RangeError);
    }
    // @huggingface/tokenizers refuses an empty list; the text of no tokens is ''.
    return list.length ? this.#tokenizer.decode(list, { skip_special_tokens: skipSpecialTokens }) : '';
  }

  tokenToId(token: string): number | undefined {
    return this.#tokenizer.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.#tokenizer.id_to_token(id);
  }

  /**
   * Makes `template` the default chat template when the tokenizer carries none (a model whose tokenizer_config.json
   * has no chat_template, as Video-LLaVA's); returns whether it was taken.
   */
  useTemplateIfNone(template: string): boolean {
    parse(z.string().min(1), template, 'Tokenizer.useTemplateIfNone: template');
    if (this.#templates.has('default')) return false;
    this.#templates.set('default', template);
    return true;
  }

  /**
   * The text a model's processor writes around a video in a user turn where the chat template, given a string,
   * writes only what the string holds: Qwen2.5-VL's template lays out a video content part as
   * `<|vision_start|><|video_pad|><|vision_end|>` straight before the text, a string as it is. encodePrompt then
   * puts `before` / `after` around the placeholder (unless the rendered prompt has them there already) and joins a
   * question without a placeholder to the video with `separator` (LLaVA's "\n" by default).
   */
  setVideoMarkup(markup: VideoMarkup): void {
    this.#videoMarkup = parse(VideoMarkupSchema, markup, 'Tokenizer.setVideoMarkup');
  }

  get videoMarkup(): Required<VideoMarkup> {
    return this.#videoMarkup;
  }

  #videoMarkup: Required<VideoMarkup> = { before: '', after: '', separator: '\n' };

  /** Names of the chat templates the tokenizer carries ('default' for a single one). */
  get chatTemplates(): string[] {
    return [...this.#templates.keys()];
  }

  /**
   * Renders a conversation with the tokenizer's chat template exactly as transformers' apply_chat_template does
   * (trim_blocks and lstrip_blocks; bos_token, eos_token, … in the context; tools and documents when given).
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatOptions = {}): string {
    const checked = parse(Messages, messages, 'applyChatTemplate: messages');
    const { addGenerationPrompt, chatTemplate, context, tools, documents } = parse(
      ChatOptions, options, 'applyChatTemplate: options',
    );
    const template = this.#template(this.#templateSource(chatTemplate, tools !== undefined));
    try {
      return template.render({
        ...this.#templateContext,
        ...context,
        messages: checked,
        tools,
        documents,
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (error) {
      // raise_exception() in a template lands here: its message is the template's own complaint.
      throw argumentError(`applyChatTemplate: the chat template failed: ${(error as Error).message}`);
    }
  }

  /** `applyChatTemplate` then `encode` without adding special tokens (the template already wrote them). */
  encodeChat(messages: readonly ChatMessage[], options: ChatOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }

  #template(source: string): Template {
    let template = this.#compiled.get(source);
    if (!template) {
      try {
        template = new Template(source);
      } catch (error) {
        throw argumentError(`applyChatTemplate: the chat template does not parse: ${(error as Error).message}`);
      }
      this.#compiled.set(source, template);
    }
    return template;
  }

  // transformers' choice: a named template if asked for (else the argument is a template itself), then
  // 'tool_use' when tools are given and such a template exists, then 'default'.
  #templateSource(requested: string | undefined, withTools: boolean): string {
    if (requested !== undefined) return this.#templates.get(requested) ?? requested;
    const name = withTools && this.#templates.has('tool_use') ? 'tool_use' : 'default';
    const found = this.#templates.get(name);
    if (found === undefined) {
      throw argumentError(
        'applyChatTemplate: the tokenizer has no chat_template (tokenizer_config.json) and none was given',
      );
    }
    return found;
  }
}
