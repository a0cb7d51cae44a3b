// VideoLLaMA3's prompt layout of a video: the "Time t.ts:" text its processor writes before each frame's kept tokens.
// The ids against transformers' VideoLlama3Processor (test/fixtures/hf/video_llama3_frame_text, made by
// scripts/fixtures/video_llama3_frame_text_reference.py), and tpo's -200 form with that text around the frames
// against transformers' logits of the interleaved form (test/fixtures/hf/video_llama3).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { pythonFixed1, videoLlama3FrameText } from '../../lib/model/session.js';
import { Tokenizer } from '../../lib/model/tokenizer.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { tensor, type Tensor } from '../../lib/tensor.js';
import { FIXTURES } from '../helpers.js';
import { assertClose, int64, readFixture } from './parity.js';

const TEXT_DIR = join(FIXTURES, 'hf', 'video_llama3_frame_text');
const MODEL_DIR = join(FIXTURES, 'hf', 'video_llama3');
const TIME = 40, COMMA = 41;  // the model fixture's stand-ins for "Time t.ts:" and ","

interface Case { fps: number | null; indices: number[]; kept: number[]; prefix: string; suffix: string; input_ids: number[] }

describe("VideoLLaMA3's frame text (VideoLlama3Processor.replace_video_token)", function () {
  this.timeout(120_000);

  it("tpo's prompt ids equal transformers' processor's: \"Time t.ts:\" before each frame's kept tokens, frames joined by \",\"", async () => {
    const { cases, video_token_id: videoId } = JSON.parse(readFileSync(join(TEXT_DIR, 'cases.json'), 'utf8')) as { cases: Case[]; video_token_id: number };
    const tokenizer = await Tokenizer.load(TEXT_DIR);
    assert.equal(tokenizer.tokenToId('<|video_pad|>'), videoId);
    for (const c of cases) {
      // its time stamps: each sampled frame's index over the video's frame rate (1 when unknown)
      const text = videoLlama3FrameText(tokenizer, c.indices.map((i) => i / (c.fps ?? 1)));
      const ids = [
        ...tokenizer.encode(c.prefix, { addSpecialTokens: false }),
        ...text.flatMap((t, f) => [...t.before!, ...Array<number>(c.kept[f]!).fill(videoId)]),
        ...tokenizer.encode(c.suffix, { addSpecialTokens: false }),
      ];
      assert.deepEqual(ids, c.input_ids, `${c.fps} fps, frames ${c.indices.join(',')}`);
    }
  });

  it("formats time stamps as Python's f\"{t:.1f}\" (exact halves of a tenth to the even one)", () => {
    assert.deepEqual([0, 0.25, 0.75, 1.25, 2.5, 0.05, 3.3366, 9.95, 3599].map(pythonFixed1), ['0.0', '0.2', '0.8', '1.2', '2.5', '0.1', '3.3', '9.9', '3599.0']);
  });

  it("tpo's -200 form with the frame text gives transformers' logits of the processor's interleaved layout", async () => {
    const { inputs, expected } = await readFixture(MODEL_DIR);
    using model = await VideoLM.load(MODEL_DIR);
    const frames = inputs.frames!.shape[0]!;
    const frameText = Array.from({ length: frames }, (_, f) => ({ before: f ? [COMMA, TIME] : [TIME] }));
    // row 0 of the fixture: [1, 10, 11] + the interleaved video + [13, 14, 15, 16], unpadded
    const ids = int64(inputs.input_ids!);
    const width = inputs.input_ids!.shape[1]!;
    const prompt = tensor(BigInt64Array.from([1n, 10n, 11n, -200n, 13n, 14n, 15n, 16n]), [1, 8]);
    const vocab = expected.logits!.shape[2]!;
    const row0 = (t: Tensor) => tensor(Float32Array.from((t.toTypedArray() as Float32Array).subarray(0, width * vocab)), [1, width, vocab]);
    assert.equal(ids.slice(0, width).filter((id) => id !== 0n).length, width, 'row 0 is the longer, unpadded row');

    // per call (encodeVideo's frameText): the embeddings the interleaved row holds
    const interleaved = await model.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, pixelValuesVideos: inputs.pixel_values_videos,
      videoGridThw: inputs.video_grid_thw, videoMergeSizes: inputs.video_merge_sizes, videoCompressionMask: inputs.video_compression_mask });
    const tokens = await model.encodeVideo(inputs.frames!, { frameText });
    const hidden = interleaved.inputs_embeds!.shape[2]!;
    const span = (interleaved.inputs_embeds!.toTypedArray() as Float32Array).subarray(3 * hidden, (width - 4) * hidden);
    assertClose(tokens, tensor(Float32Array.from(span), [width - 7, hidden]), 'encodeVideo with frame text = the interleaved embeddings');

    // set on the model (setFrameText): a -200 prompt with the frames encoded in the call
    model.setFrameText(frameText);
    const out = await model.forward({ inputIds: prompt, pixelValues: inputs.frames });
    assertClose(out.logits, row0(expected.logits!), 'logits (-200 with frame text) = transformers\' row 0');
    model.setFrameText([]);
    await assert.rejects(model.encodeVideo(inputs.frames!, { frameText: frameText.slice(1) }), /the frame text is set for 3 frames; the video has 4/);
    await assert.rejects(model.encodeVideo(inputs.frames!, { frameText: [{ before: [64] }, ...frameText.slice(1)] }), /frame 1 holds id 64, outside the vocabulary/);
    assert.throws(() => model.encodeVideo(inputs.frames!, { frameText: [{ before: [-1] }] }), /VideoLM.encodeVideo: options: frameText.0.before.0/);
  });
});
