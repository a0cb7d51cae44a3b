// lib/synthetic/tokenizer.ts and model-config.ts: the world's tokenizer loads through the same path as Qwen2's,
// round-trips every sentence the world writes, and agrees with the tiny model's config.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { encodeSft, IMAGE_TOKEN_INDEX } from '../../lib/data/encode.js';
import { Tokenizer } from '../../lib/model/tokenizer.js';
import { caption } from '../../lib/synthetic/captions.js';
import { writeModelFiles } from '../../lib/synthetic/dataset.js';
import { makeQuestions } from '../../lib/synthetic/questions.js';
import { Random } from '../../lib/synthetic/random.js';
import { questionRecords } from '../../lib/synthetic/records.js';
import { renderVideo } from '../../lib/synthetic/render.js';
import { makeVideo } from '../../lib/synthetic/world.js';
import { loadPreprocessorConfig, preprocessFrames } from '../../lib/video/preprocess.js';
import { removeDir, tempDir } from '../helpers.js';

describe('synthetic tokenizer and tiny model config', () => {
  let dir: string;
  let tok: Tokenizer;
  let config: Record<string, any>;
  before(async () => {
    dir = tempDir('tpo-synth-model-');
    await writeModelFiles(dir);
    tok = await Tokenizer.load(dir);
    config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  });
  after(() => removeDir(dir));

  it('loads through Tokenizer.load with Qwen2-style special tokens', () => {
    assert.deepEqual(tok.eos, { token: '<|im_end|>', id: 2 });
    assert.deepEqual(tok.pad, { token: '<|endoftext|>', id: 0 });
    assert.deepEqual(tok.unk, { token: '<unk>', id: 3 });
    assert.equal(tok.bos, undefined);
    assert.deepEqual([...tok.specialIds].sort(), [0, 1, 2, 3]);
    assert.equal(
      tok.applyChatTemplate([{ role: 'user', content: 'How many shapes appear in the video?' }], { addGenerationPrompt: true }),
      '<|im_start|>user\nHow many shapes appear in the video?<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('round-trips every sentence the world writes, one token a word, no unknown words', () => {
    const sentences = new Set<string>();
    for (let seed = 0; seed < 200; seed++) {
      const video = makeVideo(seed);
      for (const e of video.events) sentences.add(caption(e));
      for (const q of makeQuestions(video, seed)) {
        const r = questionRecords({ id: 'x', video: 'x.mp4', length: video.length }, q, seed % 4, new Random(seed));
        for (const text of [r.open.prompt, r.open.answer, r.choice.prompt, r.choice.answer, ...r.benchmark.options]) {
          sentences.add(text.replace('<image>\n', ''));
        }
      }
    }
    assert.ok(sentences.size > 2000);
    for (const s of sentences) {
      const ids = tok.encode(s);
      assert.ok(!ids.includes(tok.unk!.id), `'${s}' has an unknown word: ${ids.map((i) => tok.idToToken(i)).join('|')}`);
      assert.equal(tok.decode(ids), s);
    }
    assert.deepEqual(tok.encode('an orange ring moves left').map((i) => tok.idToToken(i)), ['an', ' orange', ' ring', ' moves', ' left']);
    assert.deepEqual(tok.encode('a purple dragon').map((i) => tok.idToToken(i)), ['a', ' purple', '<unk>']);
  });

  it("builds SFT inputs as LLaVA does: one image id, the answer's tokens and <|im_end|> in the labels", () => {
    const video = makeVideo(4);
    const [q] = makeQuestions(video, 4);
    const r = questionRecords({ id: 'x', video: 'x.mp4', length: video.length }, q!, 1, new Random(1));
    const inputs = encodeSft(tok, r.choice);
    assert.equal(inputs.inputIds.filter((id) => id === IMAGE_TOKEN_INDEX).length, 1);
    assert.equal(inputs.inputIds[inputs.imageIndex], IMAGE_TOKEN_INDEX);
    const answer = Array.from(inputs.labels.slice(inputs.promptLength));
    assert.deepEqual(answer, [tok.tokenToId('B'), tok.eos!.id]);
    assert.ok(!Array.from(inputs.inputIds).includes(tok.unk!.id));
  });

  it("has the model config's vocabulary and token ids, in LLaVA-Video's llava_qwen layout", () => {
    assert.equal(config.model_type, 'llava_qwen');
    assert.equal(config.vocab_size, tok.vocabSize);
    assert.deepEqual([config.eos_token_id, config.pad_token_id, config.bos_token_id], [2, 0, 0]);
    assert.equal(config.mm_projector_type, 'mlp2x_gelu');
    assert.equal(config.mm_hidden_size, config.vision_config.hidden_size);
    assert.equal(config.vision_config.model_type, 'siglip_vision_model');
    assert.equal(config.hidden_size % config.num_attention_heads, 0);
    assert.equal(config.num_attention_heads % config.num_key_value_heads, 0);
    // The keys LLaVA-NeXT's llava_qwen configs carry (those of the LLaVA-Video parity fixture), plus the tower's.
    for (const key of ['mm_vision_select_layer', 'mm_vision_select_feature', 'mm_patch_merge_type', 'mm_newline_position',
      'mm_spatial_pool_mode', 'mm_spatial_pool_stride', 'image_token_index', 'rope_theta', 'rms_norm_eps',
      'tie_word_embeddings', 'max_position_embeddings', 'intermediate_size', 'num_hidden_layers']) {
      assert.ok(key in config, key);
    }
    assert.deepEqual(
      [config.mm_patch_merge_type, config.mm_newline_position, config.mm_spatial_pool_mode, config.mm_spatial_pool_stride],
      ['spatial_unpad', 'grid', 'average', 2],
    );
    for (const key of ['image_size', 'patch_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers',
      'num_attention_heads', 'layer_norm_eps', 'hidden_act', 'num_hidden_layers_in_checkpoint']) {
      assert.ok(key in config.vision_config, `vision_config.${key}`);
    }
  });

  it('preprocesses rendered frames to the tower input with its preprocessor_config.json', async () => {
    const processor = await loadPreprocessorConfig(dir);
    const frames = await renderVideo(makeVideo(1, { length: 'short' }));
    const pixels = await preprocessFrames(frames, processor);
    assert.deepEqual(pixels.shape, [frames.shape[0], 3, config.vision_config.image_size, config.vision_config.image_size]);
    const values = pixels.toTypedArray() as Float32Array;
    assert.ok(values.every((v) => v >= -1 && v <= 1));
    frames.dispose();
    pixels.dispose();
  });
});
