// The permanent fuzz harness (`npm run fuzz`): seeded, bounded mutations of what users hand tpo, each case run in
// its own process (scripts/fuzz-case.ts) under an address-space limit (prlimit --as) and a time limit.
//
//   node dist/scripts/fuzz.js [--minutes 10] [--seed 1] [--out fuzz-out] [--memory-mib 4096] [--timeout 30]
//                             [--kinds safetensors,model,jsonl,train-config,video] [--cases N] [--keep-ok]
//                             [--no-malloc-check]
//
// Inputs: safetensors headers and bodies (the test fixtures, mutated as JSON and as bytes), model folders
// (config.json fields and weights), JSONL records (every reader's formats), train configs, and videos made with the
// ffmpeg CLI (tiny to 4K frame sizes, odd pixel formats and codecs), truncated and byte-flipped.
// Outcomes: ok; clean-error (an Error whose message names the input); unnamed-error (an Error that does not);
// oom (the memory limit hit); signal (a crash); hang (past the time limit); exit (a non-zero exit without a result).
// Every case that is not ok or clean-error is kept under <out>/cases/<outcome>/ with case.json (how to rerun it).
// Children run with glibc's malloc checks (libc_malloc_debug, MALLOC_CHECK_=3's successor) so heap corruption aborts
// where it happens instead of passing unnoticed; TPO_NUM_THREADS=1 keeps one case to one core.
// The same seed gives the same cases in the same order.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { parseFlags } from '../lib/cli/flags.js';
import { formatDuration } from '../lib/progress.js';
import { mulberry32 } from '../lib/data/videos.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CASE_SCRIPT = join(ROOT, 'dist', 'scripts', 'fuzz-case.js');
const FIXTURES = join(ROOT, 'test', 'fixtures');

const KINDS = ['safetensors', 'model', 'jsonl', 'train-config', 'video'] as const;
type Kind = (typeof KINDS)[number];
const OUTCOMES = ['ok', 'clean-error', 'unnamed-error', 'oom', 'signal', 'hang', 'exit'] as const;
type Outcome = (typeof OUTCOMES)[number];

type Random = () => number;
const int = (r: Random, n: number) => Math.floor(r() * n);
const pick = <T>(r: Random, xs: readonly T[]): T => xs[int(r, xs.length)]!;

// ------------------------------------------------------------------------------------------------ mutations

/** A byte-level mutation of `bytes`, and what it did. */
function mutateBytes(r: Random, bytes: Buffer): { bytes: Buffer; how: string } {
  const n = bytes.length;
  const at = int(r, Math.max(1, n));
  const len = 1 + int(r, Math.min(4096, Math.max(1, n - at)));
  switch (int(r, 7)) {
    case 0: {
      const out = Buffer.from(bytes);
      const flips = 1 + int(r, 16);
      for (let i = 0; i < flips; i++) out[int(r, n)] ^= 1 << int(r, 8);
      return { bytes: out, how: `flip ${flips} bits` };
    }
    case 1: return { bytes: bytes.subarray(0, at), how: `truncate to ${at} of ${n} bytes` };
    case 2: return { bytes: Buffer.concat([bytes.subarray(0, at), Buffer.from(Array.from({ length: len }, () => int(r, 256))), bytes.subarray(at)]), how: `insert ${len} random bytes at ${at}` };
    case 3: return { bytes: Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + len)]), how: `delete ${len} bytes at ${at}` };
    case 4: return { bytes: Buffer.concat([bytes.subarray(0, at + len), bytes.subarray(at, at + len), bytes.subarray(at + len)]), how: `duplicate ${len} bytes at ${at}` };
    case 5: {
      const out = Buffer.from(bytes);
      out.fill(pick(r, [0, 0xff]), at, at + len);
      return { bytes: out, how: `fill ${len} bytes at ${at}` };
    }
    default: {
      const out = Buffer.from(bytes);
      for (let i = 0; i < Math.min(8, n - at); i++) out[at + i] = int(r, 256);
      return { bytes: out, how: `random word at ${at}` };
    }
  }
}

const ODD_VALUES: unknown[] = [
  null, true, false, 0, -1, 1, 2, 1.5, -0.5, 1e9, 2 ** 31, 2 ** 32 + 1, 2 ** 53 + 2, 1e308, -1e308, 1e-300, '', 'x', 'A',
  'F32', 'BF16', 'U8', 'I64', 'F8_E4M3', 'Q4', '../../etc/passwd', '/proc/self/mem', '/dev/zero', 'x'.repeat(100_000), [], {},
  [1, 2, 3], [-1], [0, 0], [2 ** 40, 2 ** 40], [1, -1], { a: 1 }, '\u0000', 'ünï🎬', '-1', 'NaN', 'Infinity',
];

/** Every [container, key] of a JSON value, down to 20 levels (a mutation may have nested one thousands deep). */
function slots(root: unknown): [Record<string, unknown> | unknown[], string | number][] {
  const out: [Record<string, unknown> | unknown[], string | number][] = [];
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length) {
    const [value, depth] = stack.pop()!;
    if (depth > 20 || !value || typeof value !== 'object') continue;
    for (const [k, v] of Object.entries(value)) {
      out.push([value as Record<string, unknown>, Array.isArray(value) ? Number(k) : k]);
      stack.push([v, depth + 1]);
    }
  }
  return out;
}

/** 1-3 mutations of a JSON value (in place): odd values, deleted and added keys, nesting; and what they were. */
function mutateJson(r: Random, value: unknown): string {
  const done: string[] = [];
  for (let m = 1 + int(r, 3); m > 0; m--) {
    const all = slots(value);
    if (!all.length) break;
    const [container, key] = pick(r, all);
    const op = int(r, 6);
    if (op <= 2) {
      const v = structuredClone(pick(r, ODD_VALUES));
      (container as Record<string | number, unknown>)[key] = v;
      done.push(`${String(key)} = ${JSON.stringify(v)?.slice(0, 40)}`);
    } else if (op === 3 && !Array.isArray(container)) {
      delete (container as Record<string, unknown>)[key as string];
      done.push(`delete ${String(key)}`);
    } else if (op === 4 && !Array.isArray(container)) {
      (container as Record<string, unknown>)[pick(r, ['extra', '__proto__', 'constructor', 'dtype', 'shape', ''])] = pick(r, ODD_VALUES);
      done.push('add a key');
    } else {
      let nested: unknown = (container as Record<string | number, unknown>)[key];
      const depth = pick(r, [2, 50, 1000]);
      for (let i = 0; i < depth; i++) nested = [nested];
      (container as Record<string | number, unknown>)[key] = nested;
      done.push(`${String(key)} nested ${depth} deep`);
    }
  }
  return done.join('; ');
}

/** A safetensors file with its JSON header mutated (length rewritten to match, or not). */
function mutateSafetensorsHeader(r: Random, bytes: Buffer): { bytes: Buffer; how: string } {
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as unknown;
  const how = mutateJson(r, header);
  const text = Buffer.from(JSON.stringify(header));
  const lie = r() < 0.15;
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(lie ? pick(r, [0, 1, text.length + 1, text.length - 1, 2 ** 40, Number.MAX_SAFE_INTEGER]) : text.length));
  return { bytes: Buffer.concat([prefix, text, bytes.subarray(8 + length)]), how: `header: ${how}${lie ? ' (length field wrong)' : ''}` };
}

// ------------------------------------------------------------------------------------------------ the corpus

interface Corpus {
  safetensors: string[];
  models: string[];
  jsonl: { reader: string; records: unknown[] }[];
  trainConfig: Record<string, unknown>;
  videos: string[];
  /** Video cases made so far. */
  videoCases: number;
}

/** Videos the ffmpeg CLI makes: sizes from 1x1 to 4K, odd pixel formats and codecs (the decoder's hard cases). */
const VIDEO_SPECS: { name: string; size: string; codec: string[]; pix: string; frames?: number }[] = [
  { name: 'mpeg4-6x6.avi', size: '6x6', codec: ['-c:v', 'mpeg4'], pix: 'yuv420p' },
  { name: 'mpeg4-2x2.avi', size: '2x2', codec: ['-c:v', 'mpeg4'], pix: 'yuv420p' },
  { name: 'mpeg4-18x10.avi', size: '18x10', codec: ['-c:v', 'mpeg4'], pix: 'yuv420p' },
  { name: 'h264-16x16.mp4', size: '16x16', codec: ['-c:v', 'libx264', '-preset', 'ultrafast'], pix: 'yuv420p' },
  { name: 'h264-444-30x22.mkv', size: '30x22', codec: ['-c:v', 'libx264', '-preset', 'ultrafast'], pix: 'yuv444p' },
  { name: 'h264-wide-2048x16.mp4', size: '2048x16', codec: ['-c:v', 'libx264', '-preset', 'ultrafast'], pix: 'yuv420p' },
  { name: 'h264-tall-16x2048.mp4', size: '16x2048', codec: ['-c:v', 'libx264', '-preset', 'ultrafast'], pix: 'yuv420p' },
  { name: 'h264-4k-3840x2160.mp4', size: '3840x2160', codec: ['-c:v', 'libx264', '-preset', 'ultrafast'], pix: 'yuv420p', frames: 2 },
  { name: 'ffv1-gray-17x9.mkv', size: '17x9', codec: ['-c:v', 'ffv1'], pix: 'gray' },
  { name: 'ffv1-1x1.mkv', size: '1x1', codec: ['-c:v', 'ffv1'], pix: 'yuv444p' },
  { name: 'ffv1-1x40.mkv', size: '1x40', codec: ['-c:v', 'ffv1'], pix: 'yuv444p' },
  { name: 'ffv1-10bit-30x18.mkv', size: '30x18', codec: ['-c:v', 'ffv1'], pix: 'yuv422p10le' },
  { name: 'ffv1-gbrap16-7x5.mkv', size: '7x5', codec: ['-c:v', 'ffv1'], pix: 'gbrap16le' },
  { name: 'mjpeg-24x24.avi', size: '24x24', codec: ['-c:v', 'mjpeg'], pix: 'yuvj420p' },
  { name: 'png-rgba-13x7.mov', size: '13x7', codec: ['-c:v', 'png'], pix: 'rgba' },
  { name: 'raw-bgr0-5x3.avi', size: '5x3', codec: ['-c:v', 'rawvideo'], pix: 'bgr0' },
  { name: 'raw-pal8-9x9.avi', size: '9x9', codec: ['-c:v', 'rawvideo'], pix: 'pal8' },
  { name: 'gif-20x12.gif', size: '20x12', codec: ['-c:v', 'gif'], pix: 'pal8' },
  { name: 'vp9-32x32.webm', size: '32x32', codec: ['-c:v', 'libvpx-vp9', '-deadline', 'realtime'], pix: 'yuv420p' },
  { name: 'utvideo-gbrp-8x8.avi', size: '8x8', codec: ['-c:v', 'utvideo'], pix: 'gbrp' },
  { name: 'prores-32x16.mov', size: '32x16', codec: ['-c:v', 'prores_ks'], pix: 'yuv422p10le' },
  { name: 'huffyuv-4x4.avi', size: '4x4', codec: ['-c:v', 'huffyuv'], pix: 'yuv422p' },
  { name: 'qtrle-11x3.mov', size: '11x3', codec: ['-c:v', 'qtrle'], pix: 'rgb24' },
];

function makeVideos(dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const made: string[] = [];
  for (const v of VIDEO_SPECS) {
    const file = join(dir, v.name);
    if (!existsSync(file)) {
      const r = spawnSync('ffmpeg', [
        '-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i',
        // testsrc2 (yuv420p) cannot be 1 pixel wide or high: draw larger, convert, then scale down.
        /(^1x|x1$)/.test(v.size) ? `testsrc2=size=16x16:rate=10:duration=1,format=yuv444p,scale=${v.size.replace('x', ':')}`
          : `testsrc2=size=${v.size}:rate=10:duration=1`,
        '-frames:v', String(v.frames ?? 10), ...v.codec, '-pix_fmt', v.pix, file,
      ], { encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0) {
        process.stderr.write(`fuzz: ffmpeg could not make ${v.name} (${r.stderr.trim().split('\n').at(-1)}); left out\n`);
        continue;
      }
    }
    made.push(file);
  }
  return made;
}

const PAIR = { id: 'p1', video: 'v.mp4', prompt: 'What moves first?', chosen: 'the red circle', rejected: 'the blue square' };
const JSONL_SEEDS: { reader: string; records: unknown[] }[] = [
  { reader: 'pairs', records: [PAIR, { ...PAIR, id: 'p2', chosen_score: 5, rejected_score: 1 }] },
  { reader: 'pairs', records: [{ id: 'clip.mp4', question: 'What happens?', answer: 'a dog runs', rejected: 'a cat sits' }] },
  { reader: 'sft', records: [{ id: 's1', video: 'v.mp4', prompt: 'Describe.', answer: 'A red circle moves left.' }] },
  { reader: 'annotations', records: [{ video: 'v.mp4', description: ['a red circle', 'a blue square'], scene_timestamps: [[0, 1.5], [1.5, 3]] }] },
  { reader: 'benchmark', records: [{ id: 'q1', video: 'v.mp4', question: 'Which first?', options: ['red', 'blue', 'green', 'cyan'], answer: 'B', kind: 'localized' }] },
  { reader: 'eval', records: [{ video_id: '001', duration: 'short', domain: 'd', sub_category: 's', videoID: 'v', question_id: 'q1', task_type: 't', question: 'q?', options: ['A. a', 'B. b', 'C. c', 'D. d'], answer: 'C' }] },
  { reader: 'eval', records: [{ video: 'v.mp4', duration: 3, question: 'q?', candidates: ['grows', 'moves left'], answer: 'moves left', question_type: 'plotQA' }] },
  { reader: 'eval', records: [{ id: 'a_0', video_id: 'a', video_path: 'v.mp4', question: 'q?', candidates: ['red', 'blue', 'cyan'], correct_choice: 2, duration_group: 15, question_category: 'TOS' }] },
];

const TRAIN_CONFIG = {
  model: 'world/model', output: 'runs/x', data: { train: 'pairs.jsonl', validation: 'val.jsonl' }, objective: 'tpo',
  preset: 'longva', loss: { type: 'sigmoid', beta: 0.3, sftWeight: 0.5 }, reference: 'precomputed',
  lora: { r: 8, alpha: 16, dropout: 0, targetModules: ['q_proj', 'v_proj'] }, train: { vision: false, projector: false },
  lr: 1e-5, optimizer: { weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, maxGradNorm: 1 },
  schedule: { type: 'cosine', warmupRatio: 0.1 }, batchSize: 8, gradientAccumulation: 2, epochs: 1, maxSteps: 10, seed: 0,
  frames: 16, maxLength: 4096, checkpoint: { every: 50, keepLast: 2 }, evalEvery: 10, export: { merge: false },
  onNonFinite: 'stop', onVideoError: 'skip', overwrite: false,
};

function corpus(out: string): Corpus {
  return {
    safetensors: [join(FIXTURES, 'safetensors', 'reference.safetensors'), join(FIXTURES, 'hf', 'qwen2', 'model.safetensors'), join(FIXTURES, 'hf', 'clip', 'inputs.safetensors')],
    models: [join(FIXTURES, 'hf', 'qwen2'), join(FIXTURES, 'hf', 'llava_video'), join(FIXTURES, 'hf', 'clip')],
    jsonl: JSONL_SEEDS,
    trainConfig: TRAIN_CONFIG,
    videos: makeVideos(join(out, 'corpus', 'videos')),
    videoCases: 0,
  };
}

// ------------------------------------------------------------------------------------------------ cases

interface Case {
  kind: Kind;
  dir: string;
  /** The paths an error message should name (any one). */
  names: string[];
  how: string;
}

function writeCase(r: Random, kind: Kind, dir: string, c: Corpus): Case {
  mkdirSync(dir, { recursive: true });
  switch (kind) {
    case 'safetensors': {
      const seed = pick(r, c.safetensors);
      const m = r() < 0.5 ? mutateSafetensorsHeader(r, readFileSync(seed)) : mutateBytes(r, readFileSync(seed));
      const file = join(dir, 'input.safetensors');
      writeFileSync(file, m.bytes);
      return { kind, dir, names: [file], how: `${basename(seed)}: ${m.how}` };
    }
    case 'model': {
      const seed = pick(r, c.models);
      const model = join(dir, 'model');
      mkdirSync(model);
      for (const name of ['config.json', 'model.safetensors']) cpSync(join(seed, name), join(model, name));
      let how: string;
      if (r() < 0.6) {
        const config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')) as unknown;
        how = `config.json: ${mutateJson(r, config)}`;
        writeFileSync(join(model, 'config.json'), JSON.stringify(config));
      } else {
        const bytes = readFileSync(join(model, 'model.safetensors'));
        const m = r() < 0.5 ? mutateSafetensorsHeader(r, bytes) : mutateBytes(r, bytes);
        writeFileSync(join(model, 'model.safetensors'), m.bytes);
        how = `model.safetensors: ${m.how}`;
      }
      return { kind, dir, names: [model], how: `${basename(seed)}: ${how}` };
    }
    case 'jsonl': {
      const seed = pick(r, c.jsonl);
      const records = structuredClone(seed.records);
      let how = mutateJson(r, records);
      let text = records.map((x) => JSON.stringify(x)).join('\n') + '\n';
      const textual = int(r, 6);
      if (textual === 0) { text = `\uFEFF${text.replace(/\n/g, '\r\n')}`; how += '; BOM and CRLF'; }
      if (textual === 1) { text = text.slice(0, int(r, text.length)); how += '; cut'; }
      if (textual === 2) { text += `{"id": "big", "text": "${'z'.repeat(1 + int(r, 5_000_000))}"}\n`; how += '; a long line'; }
      if (textual === 3) { text = `[${records.map((x) => JSON.stringify(x)).join(',')}`; how += '; an unclosed array'; }
      const file = join(dir, `input.${pick(r, ['jsonl', 'json'])}`);
      writeFileSync(file, text);
      writeFileSync(join(dir, 'reader.json'), JSON.stringify(seed.reader));
      return { kind, dir, names: [file], how: `${seed.reader}: ${how}` };
    }
    case 'train-config': {
      const config = structuredClone(c.trainConfig);
      let how = mutateJson(r, config);
      let text = JSON.stringify(config);
      if (r() < 0.15) { const m = mutateBytes(r, Buffer.from(text)); text = m.bytes.toString('utf8'); how += `; ${m.how}`; }
      const file = join(dir, 'input.json');
      writeFileSync(file, text);
      return { kind, dir, names: [file], how };
    }
    case 'video': {
      // Each video as made first (every size, pixel format and codec once), then random mutations of them.
      const fresh = c.videoCases < c.videos.length;
      const seed = fresh ? c.videos[c.videoCases]! : pick(r, c.videos);
      c.videoCases++;
      const bytes = readFileSync(seed);
      const m = fresh || r() < 0.2 ? { bytes, how: 'as made' } : mutateBytes(r, bytes);
      const file = join(dir, `input${seed.slice(seed.lastIndexOf('.'))}`);
      writeFileSync(file, m.bytes);
      return { kind, dir, names: [file], how: `${basename(seed)}: ${m.how}` };
    }
  }
}

const OOM = /out of memory|bad_alloc|Cannot allocate memory|Array buffer allocation failed|allocation failed|ENOMEM|DefaultCPUAllocator: can't allocate/i;

interface Result {
  outcome: Outcome;
  detail: string;
  seconds: number;
}

/** glibc's malloc checks (what MALLOC_CHECK_=3 was before glibc 2.34): heap corruption aborts at once. */
const MALLOC_DEBUG = '/lib/x86_64-linux-gnu/libc_malloc_debug.so.0';
const mallocCheck = (on: boolean): Record<string, string> =>
  on && existsSync(MALLOC_DEBUG) ? { LD_PRELOAD: MALLOC_DEBUG, GLIBC_TUNABLES: 'glibc.malloc.check=3' } : {};

function runCase(c: Case, memoryBytes: number, timeoutSeconds: number, checkMalloc: boolean): Promise<Result> {
  const started = performance.now();
  return new Promise((resolveResult) => {
    const child: ChildProcess = spawn('prlimit', [`--as=${memoryBytes}`, '--', process.execPath, CASE_SCRIPT, c.kind, c.dir], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TPO_NUM_THREADS: '1', ...mallocCheck(checkMalloc) },
    });
    let stdout = '', stderr = '';
    child.stdout!.on('data', (d) => { if (stdout.length < 1 << 20) stdout += d; });
    child.stderr!.on('data', (d) => { if (stderr.length < 1 << 20) stderr += d; });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutSeconds * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      const done = (outcome: Outcome, detail: string) => resolveResult({ outcome, detail: detail.slice(0, 4000), seconds });
      const line = stdout.trim().split('\n').at(-1) ?? '';
      let result: { outcome: string; message?: string; code?: string } | undefined;
      try { result = JSON.parse(line); } catch { result = undefined; }
      if (timedOut) return done('hang', `no result within ${timeoutSeconds} s; stderr: ${stderr.slice(-2000)}`);
      if (result?.outcome === 'ok') return done('ok', '');
      if (result?.outcome === 'error') {
        const message = result.message ?? '';
        if (OOM.test(message)) return done('oom', message);
        return done(c.names.some((n) => message.includes(n)) ? 'clean-error' : 'unnamed-error', `${result.code ?? ''} ${message}`);
      }
      if (OOM.test(stderr)) return done('oom', stderr.slice(-2000));
      if (signal) return done('signal', `${signal}; stderr: ${stderr.slice(-3000)}`);
      if (code !== null && code > 128) return done('signal', `exit ${code} (signal ${code - 128}); stderr: ${stderr.slice(-3000)}`);
      return done('exit', `exit ${code}; stderr: ${stderr.slice(-3000)}`);
    });
  });
}

// ------------------------------------------------------------------------------------------------ the run

async function main(): Promise<void> {
  const { values } = parseFlags(process.argv.slice(2), {
    minutes: 'number', seed: 'number', out: 'string', 'memory-mib': 'number', timeout: 'number', kinds: 'string', 'keep-ok': 'boolean', cases: 'number',
    'no-malloc-check': 'boolean',
  });
  const checkMalloc = !values['no-malloc-check'];
  const minutes = values.minutes ?? 10;
  const seed = values.seed ?? 1;
  const out = resolve(values.out ?? 'fuzz-out');
  const memory = (values['memory-mib'] ?? 4096) * 2 ** 20;
  const timeout = values.timeout ?? 30;
  const kinds = (values.kinds?.split(',') ?? [...KINDS]) as Kind[];
  for (const k of kinds) if (!KINDS.includes(k)) throw new Error(`fuzz: unknown kind '${k}' (known: ${KINDS.join(', ')})`);
  for (const [name, v] of Object.entries({ minutes, seed, 'memory-mib': memory, timeout })) {
    if (!(Number.isFinite(v) && v >= 0)) throw new Error(`fuzz: --${name} must be a number >= 0`);
  }
  if (!existsSync(CASE_SCRIPT)) throw new Error(`fuzz: ${CASE_SCRIPT} is missing: run \`npm run build:ts\``);
  if (spawnSync('prlimit', ['--version']).status !== 0) throw new Error('fuzz: prlimit (util-linux) is needed for the memory limit');

  mkdirSync(join(out, 'cases'), { recursive: true });
  const c = corpus(out);
  const random = mulberry32(seed);
  const counts = Object.fromEntries(kinds.map((k) => [k, Object.fromEntries(OUTCOMES.map((o) => [o, 0]))])) as Record<Kind, Record<Outcome, number>>;
  const kept: { outcome: Outcome; kind: Kind; dir: string; how: string; detail: string }[] = [];
  const started = performance.now();
  const deadline = started + minutes * 60_000;
  let n = 0;
  process.stderr.write(`fuzz: seed ${seed}, ${minutes} min, kinds ${kinds.join(', ')}, ${memory / 2 ** 20} MiB and ${timeout} s per case, out ${out}\n`);
  while (performance.now() < deadline && (values.cases === undefined || n < values.cases)) {
    const kind = kinds[n % kinds.length]!;
    const dir = join(out, 'work', `${kind}-${seed}-${n}`);
    rmSync(dir, { recursive: true, force: true });
    const fuzzCase = writeCase(random, kind, dir, c);
    const result = await runCase(fuzzCase, memory, timeout, checkMalloc);
    counts[kind][result.outcome]++;
    if (result.outcome === 'ok' || result.outcome === 'clean-error') {
      if (!values['keep-ok']) rmSync(dir, { recursive: true, force: true });
    } else {
      const to = join(out, 'cases', result.outcome, basename(dir));
      rmSync(to, { recursive: true, force: true });
      mkdirSync(join(out, 'cases', result.outcome), { recursive: true });
      renameSync(dir, to);
      const env = Object.entries(mallocCheck(checkMalloc)).map(([k, v]) => `${k}=${v} `).join('');
      const rerun = `${env}prlimit --as=${memory} node ${CASE_SCRIPT} ${kind} ${to}`;
      writeFileSync(join(to, 'case.json'), JSON.stringify({ kind, seed, index: n, how: fuzzCase.how, outcome: result.outcome, detail: result.detail, rerun }, null, 2));
      kept.push({ outcome: result.outcome, kind, dir: to, how: fuzzCase.how, detail: result.detail.split('\n')[0]!.slice(0, 300) });
      process.stderr.write(`fuzz: case ${n} ${kind}: ${result.outcome} (${fuzzCase.how.slice(0, 120)}) -> ${to}\n`);
    }
    n++;
    if (n % 25 === 0) process.stderr.write(`fuzz: ${n} cases in ${formatDuration((performance.now() - started) / 1000)}\n`);
  }
  rmSync(join(out, 'work'), { recursive: true, force: true });
  const totals = Object.fromEntries(OUTCOMES.map((o) => [o, kinds.reduce((s, k) => s + counts[k][o], 0)]));
  const report = { seed, minutes, cases: n, seconds: (performance.now() - started) / 1000, memoryMiB: memory / 2 ** 20, timeout, totals, byKind: counts, kept };
  writeFileSync(join(out, 'report.json'), JSON.stringify(report, null, 2));
  const width = Math.max(...kinds.map((k) => k.length), 'kind'.length);
  const row = (name: string, values: Record<string, number>) => `${name.padEnd(width)}  ${OUTCOMES.map((o) => String(values[o]).padStart(o.length)).join('  ')}`;
  console.log(`fuzz: ${n} cases in ${formatDuration(report.seconds)} (seed ${seed})\n`);
  console.log(`${'kind'.padEnd(width)}  ${OUTCOMES.join('  ')}`);
  for (const k of kinds) console.log(row(k, counts[k]));
  console.log(row('total', totals));
  if (kept.length) console.log(`\nkept cases (${kept.length}) under ${join(out, 'cases')}; each folder's case.json says how to rerun it`);
  const bad = (totals.signal ?? 0) + (totals.hang ?? 0) + (totals.exit ?? 0);
  process.exitCode = bad > 0 ? 1 : 0;
}

await main();
