// The synthetic world's tokenizer, as Hugging Face files (tokenizer.json + tokenizer_config.json) so that it loads
// through lib/model/tokenizer.ts like Qwen2's: one word a token, the space before a word part of it (" red", as
// Qwen2's byte-level BPE keeps "Ġred"), so a sentence is as many tokens as words and decodes back exactly.
//
// Model type: WordPiece over a vocabulary of whole words with no "##" continuations, which encodes each
// pre-tokenized word as itself or as <unk>: word-level behaviour. (WordLevel proper is what the Rust library
// calls it, but @huggingface/tokenizers, the JS library tpo runs, does not implement WordLevel; WordPiece it does,
// and so do transformers and the Rust library, so the files load the same everywhere.)
import { videoLlavaChatTemplate } from '../model/templates.js';
import { Tokenizer } from '../model/tokenizer.js';
import { COLOR_NAMES, FUNCTION_WORDS, LETTERS, MAX_NUMBER, PUNCTUATION, SHAPES } from './vocabulary.js';

/** Special tokens, ids 0..3: Qwen2's three (pad / end of text, turn start, turn end = EOS) and the unknown word. */
export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<unk>'] as const;

/** Qwen2's chat template without its default system message (a tiny model need not read one on every turn). */
export const CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// A word with the space before it, a number, one punctuation mark, or one whitespace character.
const PRE_TOKENIZER_PATTERN = ' ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]|\\s';

/** The words of the world, each once, in a fixed order (the ids depend on it). */
export function worldWords(): string[] {
  const numbers = Array.from({ length: MAX_NUMBER + 1 }, (_, i) => String(i));
  const words = [...COLOR_NAMES, ...SHAPES, ...FUNCTION_WORDS, ...LETTERS, ...numbers, ...PUNCTUATION];
  return [...new Set(words)];
}

/** Every token: the special ones, then each word bare and with its leading space, then the whitespace tokens. */
export function worldVocabulary(): string[] {
  const words = worldWords();
  return [...SPECIAL_TOKENS, ...words.flatMap((w) => [w, ` ${w}`]), ' ', '\n'];
}

export interface TokenizerFiles {
  'tokenizer.json': Record<string, unknown>;
  'tokenizer_config.json': Record<string, unknown>;
}

/** The tokens the Video-LLaVA variant adds after the world's vocabulary: LLaMA's BOS and EOS, the turn markers. */
export const VIDEO_LLAVA_TOKENS = ['<s>', '</s>', 'USER:', 'ASSISTANT:'] as const;

/** The tokens the VideoLLaMA3 variant adds: Qwen2.5's image and video placeholders (its processor's). */
export const VIDEO_LLAMA3_TOKENS = ['<|image_pad|>', '<|video_pad|>'] as const;

/** The tokens the InternVL variant adds: its processor's <img> / </img> / <IMG_CONTEXT>, and the word of its frame labels. */
export const INTERNVL_TOKENS = ['<img>', '</img>', '<IMG_CONTEXT>', 'Frame'] as const;

/** The tokens the Qwen2.5-VL variant adds: the ones Qwen's chat format writes a video with
 * (<|vision_start|> <|video_pad|> x tokens <|vision_end|>). */
export const QWEN2_5_VL_TOKENS = ['<|vision_start|>', '<|vision_end|>', '<|video_pad|>'] as const;

/** Qwen2.5-VL's chat format: Qwen2's, the video (tpo's <image> placeholder) between <|vision_start|> and
 * <|vision_end|> as Qwen2.5-VL's template writes a video part. */
export const QWEN2_5_VL_CHAT_TEMPLATE = CHAT_TEMPLATE.replace(
  "message['content']", "(message['content'] | replace('<image>', '<|vision_start|><image><|vision_end|>'))");

/** Which model family the tokenizer is for: Qwen2's chat format (the default, VideoLLaMA3's, InternVL's, Qwen2.5-VL's
 * with its vision markers), or Video-LLaVA's. */
export type WorldFamily = 'llava-video' | 'video-llava' | 'video-llama3' | 'internvl' | 'qwen2.5-vl';

const EXTRA_TOKENS: Record<WorldFamily, readonly string[]> = {
  'llava-video': [], 'video-llava': VIDEO_LLAVA_TOKENS, 'video-llama3': VIDEO_LLAMA3_TOKENS, internvl: INTERNVL_TOKENS,
  'qwen2.5-vl': QWEN2_5_VL_TOKENS,
};

/**
 * tokenizer.json and tokenizer_config.json of the world's tokenizer. The video-llava variant keeps every id of the
 * world's and adds LLaMA's <s> / </s> and Video-LLaVA's USER: / ASSISTANT: after them, with Video-LLaVA's
 * conversation format (lib/model/templates.ts) without its system message; the video-llama3 variant adds Qwen2.5's
 * <|image_pad|> / <|video_pad|> (ids that never occur in a prompt: transformers' form of the visual tokens).
 */
export function worldTokenizerFiles(family: WorldFamily = 'llava-video'): TokenizerFiles {
  const tokens = [...worldVocabulary(), ...EXTRA_TOKENS[family]];
  const vocab = Object.fromEntries(tokens.map((token, id) => [token, id]));
  const base = worldVocabulary().length;
  const extra = EXTRA_TOKENS[family].map((content, i) => ({ id: base + i, content }));
  const added = [...SPECIAL_TOKENS.map((content, id) => ({ id, content })), ...extra].map(({ id, content }) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false,
    special: !content.endsWith(':'),
  }));
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Split', pattern: { Regex: PRE_TOKENIZER_PATTERN }, behavior: 'Isolated', invert: false,
    },
    post_processor: null,
    decoder: { type: 'Fuse' },
    model: { type: 'WordPiece', unk_token: '<unk>', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
  const config = {
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...token }) => [String(id), token])),
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: family === 'video-llava' ? '<s>' : null,
    eos_token: family === 'video-llava' ? '</s>' : '<|im_end|>',
    pad_token: '<|endoftext|>',
    unk_token: '<unk>',
    chat_template: family === 'video-llava' ? videoLlavaChatTemplate('') : family === 'qwen2.5-vl' ? QWEN2_5_VL_CHAT_TEMPLATE : CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_max_length: 4096,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  return { 'tokenizer.json': json, 'tokenizer_config.json': config };
}

/** The world's tokenizer in memory (the same as loading the files). */
export function worldTokenizer(family: WorldFamily = 'llava-video'): Tokenizer {
  const files = worldTokenizerFiles(family);
  return Tokenizer.fromJSON(files['tokenizer.json'], files['tokenizer_config.json']);
}
