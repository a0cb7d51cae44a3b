// `tpo plan --config run.json [--gpus 1x80GB] [--gpus 8x80GB] ...`: per-device memory of a training run and whether
// it fits, with and without activation checkpointing (lib/train/plan.ts says what each term is).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { TrainConfig } from '../train/config.js';
import { CUDA_OVERHEAD, formatBytes, type MemoryPlan, modelShape, parseGpus, planMemory, type PlanRun } from '../train/plan.js';
import { parse } from '../validate.js';
import { readVideoProcessorFile } from '../video/processor-rules.js';
import { Qwen25VLProcessorConfig } from '../video/qwen2-5-vl.js';
import { loadVideoLlama3ProcessorConfig } from '../video/video-llama3.js';
import { parseFlags, requireConfig, UsageError } from './flags.js';
import { readConfigFile } from './overrides.js';

export const PLAN_USAGE = `  plan --config FILE [--gpus NxSIZE ...] [--dtype D] [--frames N] [--prompt-tokens N] [--answer-tokens N]
       [--frame-size HxW] [--zero1] [--json]
                                        memory per device of the run's training step (weights, adapters,
                                        gradients, optimizer state, activations with and without activation
                                        checkpointing) and whether it fits each --gpus (default 1x80GB);
                                        reads the model folder's config.json (and a VideoLLaMA3's or
                                        Qwen2.5-VL's video_preprocessor_config.json); --frame-size: the videos'
                                        size before a dynamic-resolution processor resizes them (default
                                        720x1280)`;

interface PlanRow { gpus: string; devices: number; deviceBytes: number; plan: MemoryPlan; fits: { checkpointing: boolean; fits: boolean; headroom: number }[] }

export async function runPlan(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    config: 'string', gpus: 'strings', dtype: 'string', frames: 'number', 'prompt-tokens': 'number', 'answer-tokens': 'number',
    zero1: 'boolean', json: 'boolean', set: 'strings', 'frame-size': 'string',
  });
  const file = requireConfig('tpo plan', values.config);
  const config = parse(TrainConfig, await readConfigFile(file, values.set), file);
  const configFile = join(config.model, 'config.json');
  const modelConfig = JSON.parse(await readFile(configFile, 'utf8')) as { model_type?: unknown };
  const shape = modelShape(modelConfig, configFile, modelConfig.model_type === 'video_llama_3' ? { videoLlama3: await videoLlama3Budget(config.model) }
    : modelConfig.model_type === 'qwen2_5_vl' ? { qwen25vl: await qwen25vlProcessor(config.model) } : {});
  const frameSize = values['frame-size'] === undefined ? undefined : parseFrameSize(values['frame-size']);
  const dtype = values.dtype ?? config.dtype ?? 'bfloat16';
  if (dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16') throw new UsageError(`--dtype '${dtype}': float32, bfloat16 or float16`);
  const rows: PlanRow[] = [];
  for (const spec of values.gpus.length ? values.gpus : ['1x80GB']) {
    let gpus;
    try {
      gpus = parseGpus(spec);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const run: PlanRun = {
      dtype,
      // On CUDA float32 weights train under bf16 autocast: activations in bf16.
      computeDtype: dtype === 'float32' ? 'bfloat16' : dtype,
      autocast: true,
      lora: config.lora ? { r: config.lora.r, targetModules: config.lora.targetModules } : undefined,
      train: config.train,
      reference: config.reference,
      frames: values.frames ?? config.frames,
      frameSize,
      promptTokens: values['prompt-tokens'] ?? 128,
      answerTokens: values['answer-tokens'] ?? 128,
      batchSize: config.batchSize,
      gradientAccumulation: config.gradientAccumulation,
      devices: gpus.count,
      zero1: values.zero1,
    };
    const plan = planMemory(shape, run);
    const fits = plan.total.map((t) => ({
      checkpointing: t.checkpointing, fits: t.bytes + CUDA_OVERHEAD <= gpus.bytes, headroom: gpus.bytes - t.bytes - CUDA_OVERHEAD,
    }));
    rows.push({ gpus: gpus.label, devices: gpus.count, deviceBytes: gpus.bytes, plan, fits });
  }
  if (values.json) {
    console.log(JSON.stringify({ model: config.model, dtype, rows }, null, 2));
    return 0;
  }
  console.log(formatPlan(config.model, rows));
  return 0;
}

/** "720x1280": a frame's height and width. */
function parseFrameSize(text: string): { height: number; width: number } {
  const m = /^(\d+)\s*[x×]\s*(\d+)$/.exec(text.trim());
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new UsageError(`--frame-size '${text}': expected HEIGHTxWIDTH, e.g. 720x1280`);
  return { height: Number(m[1]), width: Number(m[2]) };
}

/** A VideoLLaMA3 folder's pixel budget: its video processor config when it has one, else transformers' defaults. */
async function videoLlama3Budget(dir: string): Promise<{ minPixels?: number; maxPixels?: number; mergeSize?: number }> {
  if (!existsSync(join(dir, 'video_preprocessor_config.json')) && !existsSync(join(dir, 'preprocessor_config.json'))) return {};
  const c = await loadVideoLlama3ProcessorConfig(dir);
  return { minPixels: c.min_pixels ?? c.size.shortest_edge, maxPixels: c.max_pixels ?? c.size.longest_edge, mergeSize: c.merge_size };
}

/** A Qwen2.5-VL folder's video processor config as written (what it leaves out is the tower's or the processor's
 * default), checked against lib/video/qwen2-5-vl.ts' schema naming the file; none: the processor's defaults. */
async function qwen25vlProcessor(dir: string): Promise<Qwen25VLProcessorConfig> {
  if (!existsSync(join(dir, 'video_preprocessor_config.json')) && !existsSync(join(dir, 'preprocessor_config.json'))) return {};
  const { file, json } = await readVideoProcessorFile(dir);
  parse(Qwen25VLProcessorConfig, json, file);
  return json as Qwen25VLProcessorConfig;
}

function formatPlan(model: string, rows: PlanRow[]): string {
  const out: string[] = [];
  for (const row of rows) {
    const p = row.plan;
    out.push(`${model} on ${row.gpus}: ${p.pairsPerMicroBatch} pair(s) per device and micro-batch, ${p.visualTokens} visual tokens a video, ` +
      `${(p.parameters / 1e9).toFixed(2)} B parameters (${(p.trainable / 1e6).toFixed(1)} M trained)`);
    for (const t of [...p.persistent, p.gradients]) out.push(`  ${t.name.padEnd(28)} ${formatBytes(t.bytes).padStart(10)}  ${t.note}`);
    for (const a of p.activations) {
      out.push(`  step peak, checkpointing ${a.checkpointing ? 'on ' : 'off'} ${formatBytes(a.bytes).padStart(10)}  at ${a.phase}; it keeps:`);
      for (const t of a.terms) out.push(`    ${t.name.padEnd(26)} ${formatBytes(t.bytes).padStart(10)}  ${t.note}`);
    }
    out.push(`  CUDA context and workspaces   ${formatBytes(CUDA_OVERHEAD).padStart(10)}`);
    for (const f of row.fits) {
      const total = p.total.find((t) => t.checkpointing === f.checkpointing)!.bytes + CUDA_OVERHEAD;
      out.push(`  total, checkpointing ${f.checkpointing ? 'on ' : 'off'}       ${formatBytes(total).padStart(10)}  ` +
        `${f.fits ? 'fits' : 'does not fit'} in ${formatBytes(row.deviceBytes)} (${f.headroom >= 0 ? `${formatBytes(f.headroom)} left` : `${formatBytes(-f.headroom)} short`})`);
    }
    out.push('');
  }
  return out.join('\n').trimEnd();
}
