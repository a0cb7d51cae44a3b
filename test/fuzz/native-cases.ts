// Seeded generators of hostile inputs for the native code, run by the smoke test beside this file (the fuzz harness,
// scripts/fuzz.ts, has generators of its own for safetensors, model folders and videos, each case in a process of
// its own; adapters and decode sizes are only here). Each case is a set of files and one call on them; the test
// writes the files into a fresh folder, runs the calls in a child process under a deadline, and classifies the
// outcome: `ok`, `error` (the message must name the file, key or field), a signal or a timeout (both bugs).
//
// Targets (what must be fuzzed natively): safetensors headers and bodies (io/safetensors.cc), model folders'
// config.json fields and checkpoints (model/config.cc, weights.cc), PEFT adapters (model/lora.cc), videos with
// byte flips and truncations (video/reader.cc through FFmpeg), tiny and huge frame sizes and odd pixel formats
// (swscale), and decode/preprocess sizes asked of them.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// mulberry32 (lib/data/videos.ts): the generators' only source of randomness, the same numbers everywhere.
import { mulberry32 as rng } from '../../lib/data/videos.js';

export interface NativeCase {
  /** Unique and stable for a seed: what was mutated, and how. */
  name: string;
  target: 'safetensors' | 'model' | 'adapter' | 'video' | 'decode-size';
  /** Files to write, relative to the case's folder. */
  files: Record<string, Uint8Array>;
  /** The path (relative to the case's folder) the call reads; errors must name it or a file inside it. */
  entry: string;
  /**
   * A JS expression run in the child with `tpo` (the package's exports, plus `tpo.native`: the addon itself, for
   * arguments the TypeScript schemas would stop), `path` (the entry's absolute path) and `fixtures` (test/fixtures)
   * in scope; it may return a promise.
   */
  call: string;
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const utf8 = (s: string) => new TextEncoder().encode(s);

/** A safetensors file from a header (object or raw text) and a body; `length` overrides the header length field. */
export function safetensorsBytes(header: unknown, body: Uint8Array, length?: bigint): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const padded = text + ' '.repeat((8 - (utf8(text).length % 8)) % 8);
  const h = utf8(padded);
  const out = new Uint8Array(8 + h.length + body.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(body, 8 + h.length);
  return out;
}

function flipBytes(r: () => number, bytes: Uint8Array, count: number, from = 0): Uint8Array {
  const out = bytes.slice();
  for (let i = 0; i < count && out.length > from; i++) out[int(r, from, out.length - 1)] ^= 1 << int(r, 0, 7);
  return out;
}

// ------------------------------------------------------------------------------------------------ safetensors

const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'F33', '', 'f32'];
const HOSTILE_NUMBERS: unknown[] = [0, -1, 1, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 63, 1.5, -0.0, 1e308, '4', null, true, [], {}];

/** Header and body mutations of a small valid file: structure, numbers, lengths, truncation, byte flips. */
export function safetensorsCases(seed: number, count: number): NativeCase[] {
  const r = rng(seed);
  const cases: NativeCase[] = [];
  const call = 'tpo.readSafetensors(path).then((s) => { for (const t of Object.values(s.tensors)) t.toTypedArray(); })';
  for (let i = 0; i < count; i++) {
    const n = int(r, 1, 4);
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (let k = 0; k < n; k++) {
      const shape = [int(r, 1, 4), int(r, 1, 4)];
      const bytes = shape[0]! * shape[1]! * 4;
      header[`t${k}`] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
    if (r() < 0.3) header.__metadata__ = { format: 'pt' };
    let body: Uint8Array = new Uint8Array(offset).map(() => int(r, 0, 255));
    let length: bigint | undefined;
    let text: string | undefined;
    const key = `t${int(r, 0, n - 1)}`;
    const entry = header[key] as Record<string, unknown>;
    const how = pick(r, ['dtype', 'shape', 'offsets', 'length', 'truncate', 'extend', 'flip-header', 'flip-body', 'nest', 'metadata', 'duplicate', 'not-object'] as const);
    switch (how) {
      case 'dtype': entry.dtype = pick(r, DTYPES); break;
      case 'shape': entry.shape = pick(r, [[pick(r, HOSTILE_NUMBERS)], [2 ** 32, 2 ** 32], [], Array(100).fill(1), 'x']); break;
      case 'offsets': entry.data_offsets = pick(r, [[pick(r, HOSTILE_NUMBERS), 4], [8, 0], [0], [0, offset + 4], [0, 2 ** 64]]); break;
      case 'length': length = pick(r, [0n, 1n, 7n, 1n << 40n, (1n << 64n) - 1n, BigInt(int(r, 1, 200))]); break;
      case 'truncate': body = body.subarray(0, int(r, 0, Math.max(0, body.length - 1))); break;
      case 'extend': body = new Uint8Array([...body, ...new Uint8Array(int(r, 1, 64))]); break;
      case 'nest': text = `{"${key}": ${'['.repeat(int(r, 10, 200_000))}`; break;
      case 'metadata': header.__metadata__ = pick(r, [{ n: 1 }, [], 'x', { a: { b: 'c' } }]); break;
      case 'duplicate': text = JSON.stringify(header).replace(/^\{/, `{"${key}": ${JSON.stringify(entry)}, `); break;
      case 'not-object': text = pick(r, ['[1, 2]', '"x"', '{', '{"a": 1}', '\u0000\u0000', '{"a": {"dtype": "F32"}}']); break;
      default: break;
    }
    let bytes = safetensorsBytes(text ?? header, body, length);
    if (how === 'flip-header') bytes = flipBytes(r, bytes, int(r, 1, 8), 8);
    if (how === 'flip-body') bytes = flipBytes(r, bytes, int(r, 1, 32), Math.max(8, bytes.length - body.length));
    cases.push({ name: `safetensors-${seed}-${i}-${how}`, target: 'safetensors', files: { 'w.safetensors': bytes }, entry: 'w.safetensors', call });
  }
  return cases;
}

// ------------------------------------------------------------------------------------------------ model folders

const QWEN2_FIELDS = [
  'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
  'head_dim', 'max_position_embeddings', 'rope_theta', 'rms_norm_eps', 'tie_word_embeddings', 'model_type',
  'image_token_index', 'mm_spatial_pool_stride', 'mm_spatial_pool_mode', 'mm_newline_position', 'mm_patch_merge_type',
  'mm_vision_select_layer', 'mm_vision_select_feature', 'mm_hidden_size', 'mm_projector_type', 'hidden_act',
  'rope_scaling', 'use_sliding_window',
];
const VISION_FIELDS = ['image_size', 'patch_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_channels', 'layer_norm_eps', 'num_hidden_layers_in_checkpoint', 'model_type', 'hidden_act'];
const FIELD_VALUES: unknown[] = [...HOSTILE_NUMBERS, -200, 3, 7, 1e-30, -1e-6, 'average', 'grid', 'spatial', 'cls_patch', 'gelu', { type: 'linear', factor: 2 }];

/**
 * A model folder (the fixture's weights, `fixture` = 'llava_video', 'qwen2', 'longva', ...) with config.json
 * mutated field by field (or its weights flipped or truncated), loaded and run once.
 */
export function modelCases(seed: number, count: number, fixtures: string, fixture = 'llava_video'): NativeCase[] {
  const r = rng(seed);
  const config = JSON.parse(readFileSync(join(fixtures, 'hf', fixture, 'config.json'), 'utf8')) as Record<string, unknown>;
  const weights = new Uint8Array(readFileSync(join(fixtures, 'hf', fixture, 'model.safetensors')));
  const cases: NativeCase[] = [];
  const call = `tpo.VideoLM.load(path).then(async (m) => {
    const ids = (...xs) => tpo.tensor(new BigInt64Array(xs.map(BigInt)));
    await m.logprobs({ prompt: ids(1, 2, 3), answers: [ids(4, 5)] });
    m.dispose();
  })`;
  for (let i = 0; i < count; i++) {
    const c = structuredClone(config);
    let w: Uint8Array = weights;
    const how = pick(r, ['field', 'field', 'field', 'vision', 'remove', 'weights-flip', 'weights-truncate', 'two-fields'] as const);
    const mutate = (target: Record<string, unknown>, fields: readonly string[]) => {
      const field = pick(r, fields);
      target[field] = pick(r, FIELD_VALUES);
      return field;
    };
    let what: string = how;
    if (how === 'field') what = mutate(c, QWEN2_FIELDS);
    else if (how === 'two-fields') what = `${mutate(c, QWEN2_FIELDS)}+${mutate(c, QWEN2_FIELDS)}`;
    else if (how === 'vision' && c.vision_config) what = `vision_config.${mutate(c.vision_config as Record<string, unknown>, VISION_FIELDS)}`;
    else if (how === 'remove') delete c[(what = pick(r, QWEN2_FIELDS))];
    else if (how === 'weights-flip') w = flipBytes(r, weights, int(r, 1, 64), 8);
    else if (how === 'weights-truncate') w = weights.subarray(0, int(r, 0, weights.length - 1));
    cases.push({
      name: `model-${fixture}-${seed}-${i}-${what}`, target: 'model', entry: 'model',
      files: { 'model/config.json': utf8(JSON.stringify(c)), 'model/model.safetensors': w }, call,
    });
  }
  return cases;
}

/** PEFT adapter folders for the qwen2 fixture: adapter_config.json fields and the adapter's tensors mutated. */
export function adapterCases(seed: number, count: number): NativeCase[] {
  const r = rng(seed);
  const cases: NativeCase[] = [];
  const call = `tpo.VideoLM.load(fixtures + '/hf/qwen2').then(async (m) => { await m.loadLora(path); m.dispose(); })`;
  for (let i = 0; i < count; i++) {
    const rank = int(r, 1, 4);
    const config: Record<string, unknown> = { peft_type: 'LORA', r: rank, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'] };
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (let layer = 0; layer < 2; layer++)
      for (const m of ['q_proj', 'v_proj'])
        for (const [part, shape] of [['lora_A', [rank, 64]], ['lora_B', [m === 'q_proj' ? 64 : 32, rank]]] as const) {
          const bytes = shape[0] * shape[1] * 4;
          header[`base_model.model.model.layers.${layer}.self_attn.${m}.${part}.weight`] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
          offset += bytes;
        }
    let body = new Uint8Array(offset);
    const view = new Float32Array(body.buffer);
    for (let k = 0; k < view.length; k++) view[k] = (r() - 0.5) * 0.1;
    const how = pick(r, ['config', 'config', 'shape', 'nan', 'missing', 'truncate'] as const);
    let what: string = how;
    if (how === 'config') config[(what = pick(r, ['r', 'lora_alpha', 'lora_dropout', 'target_modules', 'peft_type']))] = pick(r, [...FIELD_VALUES, ['nope'], 'q_proj', NaN]);
    else if (how === 'shape') (Object.values(header)[int(r, 0, 7)] as Record<string, unknown>).shape = [rank + 1, 64];
    else if (how === 'nan') view[int(r, 0, view.length - 1)] = pick(r, [NaN, Infinity, -Infinity]);
    else if (how === 'missing') delete header[Object.keys(header)[int(r, 0, 7)]!];
    else if (how === 'truncate') body = body.subarray(0, int(r, 0, body.length - 1));
    cases.push({
      name: `adapter-${seed}-${i}-${what}`, target: 'adapter', entry: 'adapter',
      files: { 'adapter/adapter_config.json': utf8(JSON.stringify(config)), 'adapter/adapter_model.safetensors': safetensorsBytes(header, body) },
      call,
    });
  }
  return cases;
}

// ------------------------------------------------------------------------------------------------ videos

const PIXEL_FORMATS = ['yuv420p', 'yuv422p', 'yuv444p', 'rgb24', 'bgr0', 'gray', 'pal8', 'yuvj420p', 'yuv420p10le', 'nv12', 'rgba', 'gray16le', 'monow'];
const CODECS: [string, string, string[]][] = [
  ['mpeg4', 'avi', ['-c:v', 'mpeg4']],
  ['h264', 'mp4', ['-c:v', 'libx264', '-preset', 'ultrafast']],
  ['mjpeg', 'avi', ['-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p']],
  ['vp9', 'webm', ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8']],
  ['ffv1', 'mkv', ['-c:v', 'ffv1']],
];

/**
 * Videos made by the ffmpeg command line (odd and tiny sizes, many pixel formats, several codecs), then truncated,
 * byte-flipped or zeroed in part, each decoded at a size drawn from tiny to large (and with an atLeast box).
 */
export function videoCases(seed: number, count: number): NativeCase[] {
  const r = rng(seed);
  const work = mkdtempSync(join(tmpdir(), 'tpo-fuzz-video-'));
  const cases: NativeCase[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const [w, h] = pick(r, [[1, 1], [2, 2], [3, 5], [6, 6], [17, 9], [33, 31], [64, 48], [160, 90]] as const);
      const raw = r() < 0.4;
      const [codec, ext, args] = raw ? ['rawvideo', 'nut', ['-c:v', 'rawvideo', '-pix_fmt', pick(r, PIXEL_FORMATS)]] : pick(r, CODECS);
      const even = (n: number) => (codec === 'h264' || codec === 'vp9' ? Math.max(2, n + (n % 2)) : n);
      const file = join(work, `v${i}.${ext}`);
      try {
        execFileSync('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', `testsrc2=size=64x64:rate=${int(r, 1, 30)}:duration=${int(r, 1, 3)}`,
          '-vf', `scale=${even(w)}:${even(h)}`, ...args, file]);
      } catch {
        continue;  // a combination this FFmpeg cannot write
      }
      let bytes: Uint8Array = new Uint8Array(readFileSync(file));
      const how = pick(r, ['intact', 'truncate', 'flip', 'flip', 'zero-range', 'head-cut'] as const);
      if (how === 'truncate') bytes = bytes.subarray(0, int(r, 0, bytes.length - 1));
      else if (how === 'flip') bytes = flipBytes(r, bytes, int(r, 1, 64));
      else if (how === 'zero-range') {
        bytes = bytes.slice();
        const at = int(r, 0, bytes.length - 1);
        bytes.fill(0, at, Math.min(bytes.length, at + int(r, 1, 4096)));
      } else if (how === 'head-cut') bytes = bytes.subarray(int(r, 1, Math.min(512, bytes.length - 1)));
      const size = pick(r, [{}, { width: 1, height: 1 }, { width: 3 }, { height: 7 }, { width: 641, height: 359 }, { atLeast: { width: 5, height: 5 } }, { atLeast: { width: 4096, height: 4096 } }]);
      const plan = pick(r, [{ kind: 'uniform', frames: int(r, 1, 16) }, { kind: 'fps', fps: 2 }, { kind: 'timestamps', timestamps: [0, 0.5, 100] }, { kind: 'indices', indices: [0, 3, 1000] }]);
      cases.push({
        name: `video-${seed}-${i}-${codec}-${w}x${h}-${how}`, target: 'video', entry: `v.${ext}`, files: { [`v.${ext}`]: bytes },
        call: `tpo.decodeVideo(path, ${JSON.stringify(plan)}, ${JSON.stringify({ ...size, timeout: 20 })}).then((d) => d.frames.dispose())`,
      });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return cases;
}

/** Sizes asked of decode and preprocess: 0, negative, odd, huge, a box larger than the video. */
export function decodeSizeCases(seed: number, count: number, video: Uint8Array): NativeCase[] {
  const r = rng(seed);
  const sizes: unknown[] = [0, -1, 1, 2, 3, 16383, 16384, 16385, 2 ** 31, 1.5, NaN];
  return Array.from({ length: count }, (_, i) => {
    const options = { width: pick(r, sizes), height: pick(r, sizes), atLeast: r() < 0.3 ? { width: pick(r, sizes), height: pick(r, sizes) } : undefined };
    const preprocess = { resize: 'exact', height: pick(r, sizes), width: pick(r, sizes) };
    return {
      name: `decode-size-${seed}-${i}`, target: 'decode-size' as const, entry: 'v.mp4', files: { 'v.mp4': video },
      call: `tpo.native.videoDecode(path, { kind: 'uniform', frames: 2 }, ${JSON.stringify(options)})
        .then((d) => tpo.native.videoPreprocess(d.frames, ${JSON.stringify(preprocess)}))`,
    };
  });
}
