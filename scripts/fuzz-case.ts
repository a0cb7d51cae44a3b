// One fuzz case, run by scripts/fuzz.ts in its own process under a memory limit:
//   node dist/scripts/fuzz-case.js <kind> <case folder>
// It feeds the case's files to the library entry point of its kind and prints one JSON line:
//   {"outcome": "ok"} or {"outcome": "error", "message": ..., "code": ...}
// exiting 0 either way: the parent classifies (a signal, a timeout or a memory failure never gets here).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { readConfigFile } from '../lib/cli/overrides.js';
import { readAnnotations, readBenchmark, readPairs, readSft } from '../lib/data/records.js';
import { readEvalBenchmark } from '../lib/eval/formats.js';
import { readSafetensors, readSafetensorsHeader } from '../lib/model/safetensors.js';
import { VideoLM } from '../lib/model/video-lm.js';
import { tensor } from '../lib/tensor.js';
import { Trainer } from '../lib/train/trainer.js';
import { decodeVideo, probeVideo } from '../lib/video/decode.js';
import { preprocessFrames } from '../lib/video/preprocess.js';

type Target = (dir: string) => Promise<void>;

/** The one file of a case folder whose name starts with `stem`. */
function file(dir: string, stem: string): string {
  const name = readdirSync(dir).find((n) => n.startsWith(stem));
  if (!name) throw new Error(`fuzz case ${dir}: no ${stem}* file`);
  return join(dir, name);
}

const TARGETS: Record<string, Target> = {
  async safetensors(dir) {
    const path = file(dir, 'input');
    await readSafetensorsHeader(path);
    const { tensors } = await readSafetensors(path);
    for (const t of Object.values(tensors)) {
      t.toTypedArray();
      t.dispose();
    }
  },

  /** A model folder (config.json + weights), either of which may be mutated: load it and run a forward (pixels for
   * a vision tower alone, token ids for a language model). */
  async model(dir) {
    using model = await VideoLM.load(join(dir, 'model'));
    let out: Record<string, { dispose(): void }>;
    if (model.info.architecture === 'VisionModel') {
      const config = model.config as { image_size?: number; vision_config?: { image_size?: number } };
      const size = config.image_size ?? config.vision_config?.image_size ?? 32;
      using pixels = tensor(new Float32Array(3 * size * size), [1, 3, size, size]);
      out = await model.forward({ pixelValues: pixels });
    } else {
      using ids = tensor(new BigInt64Array([1n, 2n, 3n, 4n]), [1, 4]);
      out = await model.forward({ inputIds: ids });
    }
    for (const t of Object.values(out)) t.dispose();
  },

  async jsonl(dir) {
    const path = file(dir, 'input');
    const reader = JSON.parse(readFileSync(join(dir, 'reader.json'), 'utf8')) as string;
    if (reader === 'pairs') await readPairs(path).toArray();
    else if (reader === 'sft') await readSft(path).toArray();
    else if (reader === 'annotations') await readAnnotations(path).toArray();
    else if (reader === 'benchmark') await readBenchmark(path).toArray();
    else await readEvalBenchmark(path);
  },

  /** A train config file: read (with its JSON) and validated as `tpo train` does. */
  async 'train-config'(dir) {
    const path = file(dir, 'input');
    const config = await readConfigFile(path);
    new Trainer(config as never, path);
  },

  /** A video: probed, decoded three ways (uniform at its size, scaled, by fps), one decode preprocessed. */
  async video(dir) {
    const path = file(dir, 'input');
    await probeVideo(path, { timeout: 20 });
    const uniform = await decodeVideo(path, { kind: 'uniform', frames: 4 }, { timeout: 20 });
    const pixels = await preprocessFrames(uniform.frames, { size: { height: 32, width: 32 }, resample: 3 });
    pixels.dispose();
    uniform.frames.dispose();
    const scaled = await decodeVideo(path, { kind: 'uniform', frames: 3 }, { width: 24, height: 18, timeout: 20 });
    scaled.frames.dispose();
    const byFps = await decodeVideo(path, { kind: 'fps', fps: 2, maxFrames: 8 }, { timeout: 20 });
    byFps.frames.dispose();
  },
};

async function main(): Promise<void> {
  const [kind, dir] = process.argv.slice(2);
  const target = TARGETS[kind ?? ''];
  if (!target || !dir) {
    process.stderr.write(`usage: fuzz-case <${Object.keys(TARGETS).join('|')}> <case folder>\n`);
    process.exit(2);
  }
  try {
    await target(dir);
    process.stdout.write(`${JSON.stringify({ outcome: 'ok' })}\n`);
  } catch (error) {
    const e = error as Error & { code?: string };
    process.stdout.write(`${JSON.stringify({ outcome: 'error', message: String(e?.message ?? e), code: e?.code ?? null, name: e?.name ?? null })}\n`);
  }
}

await main();
