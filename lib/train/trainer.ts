// The training loop: data in, one native step per optimizer step, metrics out, checkpoints that survive a crash.
//
//   records (JSONL) -> batches grouped by video (seeded, per epoch) -> decode + preprocess each video once
//   -> token ids (chat template, <image>) -> Optimizer.preferenceStep / sftStep -> metrics.jsonl, checkpoints
//
// A step's batch is a function of (seed, epoch, index) alone and the optimizer's state is saved with the weights,
// so a run resumed from checkpoint-<k> computes exactly the steps an uninterrupted run would have.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { encodePair, encodeSft } from '../data/encode.js';
import { writeJsonFile, writeJsonl } from '../data/jsonl.js';
import { readPairs, readSft, type PreferencePair, type SftRecord } from '../data/records.js';
import { assertVideosExist, type Batch, videoBatches } from '../data/videos.js';
import { cacheDir } from '../libtorch.js';
import { copyModelFiles } from '../model/files.js';
import { readSafetensorsHeader } from '../model/safetensors.js';
import { Tokenizer } from '../model/tokenizer.js';
import { VideoLM } from '../model/video-lm.js';
import { type NativePair, type Tensor } from '../native.js';
import { tensor } from '../tensor.js';
import { parse } from '../validate.js';
import { decodeVideo } from '../video/decode.js';
import { decodeSizeFor, loadPreprocessorConfig, preprocessFrames, type PreprocessorConfig } from '../video/preprocess.js';
import { PRESETS, type ResolvedTrainConfig, TrainConfig } from './config.js';
import { Optimizer } from './optimizer.js';
import { preferenceForward, preferenceMetrics } from './preference.js';
import { learningRate } from './schedule.js';

export interface StepEvent {
  step: number;
  /** Optimizer steps in the whole run. */
  total?: number;
  epoch: number;
  metrics: Record<string, number>;
}

export interface FitResult {
  steps: number;
  /** Where the final weights (or adapter) are. */
  final?: string;
  stopped: 'done' | 'aborted';
}

const ids = (a: Int32Array | number[]) => tensor(Int32Array.from(a), [a.length]);

/** Decoded videos (or their visual tokens) kept across steps, at most this many bytes. */
const VIDEO_CACHE_BYTES = 2 * 1024 ** 3;

export class Trainer extends EventEmitter<{ step: [StepEvent]; eval: [StepEvent]; checkpoint: [{ step: number; dir: string }] }> {
  readonly config: ResolvedTrainConfig;
  #tokenizer?: Tokenizer;
  #processor?: PreprocessorConfig;
  #policy?: VideoLM;
  #reference?: VideoLM;
  #videos = new Map<string, Tensor>();
  /** Records left out, and why (identical answers, non-finite losses when onNonFinite is skip). */
  readonly skipped: { id: string; reason: string }[] = [];

  /** `source` names the config in errors (the file it came from). */
  constructor(config: TrainConfig, source = 'train config') {
    super();
    this.config = parse(TrainConfig, config, source);
  }

  get #preference(): boolean {
    return this.config.objective !== 'sft';
  }

  #loss() {
    const preset = this.config.preset ? PRESETS[this.config.preset] : undefined;
    const loss = { ...(preset?.loss ?? {}), ...this.config.loss };
    if (this.config.objective === 'dpo') loss.sftWeight = this.config.loss.sftWeight ?? 0;
    else if (this.config.objective === 'tpo') loss.sftWeight = loss.sftWeight ?? 1;
    return loss;
  }

  #referenceMode() {
    return this.config.reference ?? (this.config.lora ? 'lora-disabled' : 'frozen-copy');
  }

  /** The latest complete checkpoint: a folder is renamed into place only once whole. */
  async latestCheckpoint(): Promise<{ step: number; dir: string } | undefined> {
    if (!existsSync(this.config.output)) return undefined;
    const steps = (await readdir(this.config.output))
      .map((name) => /^checkpoint-(\d+)$/.exec(name)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number)
      .sort((a, b) => b - a);
    return steps.length ? { step: steps[0]!, dir: join(this.config.output, `checkpoint-${steps[0]}`) } : undefined;
  }

  async #loadModels(resumeFrom?: string): Promise<void> {
    const c = this.config;
    this.#tokenizer = await Tokenizer.load(c.model);
    const fullCheckpoint = resumeFrom && !c.lora;
    this.#policy = await VideoLM.load(fullCheckpoint ? resumeFrom : c.model);
    if (this.#policy.info.architecture === 'LlavaQwenForCausalLM') this.#processor = await loadPreprocessorConfig(c.model);
    if (c.lora) {
      if (resumeFrom) await this.#policy.loadLora(resumeFrom);
      else this.#policy.addLora({ ...c.lora, seed: c.seed });
    }
    const parts = c.train;
    this.#policy.setTrainable({ ...parts, language: parts.language || (!c.lora && !parts.vision && !parts.projector), lora: true });
    if (this.#preference && this.#referenceMode() === 'frozen-copy') this.#reference = await VideoLM.load(c.model);
  }

  /**
   * A video as the step takes it. With the tower and projector frozen its visual tokens never change: they are
   * encoded once and kept across steps and epochs. Otherwise its preprocessed frames are kept (up to
   * VIDEO_CACHE_BYTES, so an epoch decodes each video once) and the step encodes them once per micro-batch.
   */
  async #video(path: string): Promise<Tensor | undefined> {
    if (!this.#processor) return undefined;
    const cached = this.#videos.get(path);
    if (cached) return cached;
    const { frames } = await decodeVideo(path, { kind: 'uniform', frames: this.config.frames }, { atLeast: decodeSizeFor(this.#processor) });
    const pixels = await preprocessFrames(frames, this.#processor);
    frames.dispose();
    const trainsTower = this.config.train.vision || this.config.train.projector;
    if (!trainsTower || this.#visualTokenCount === 0) {
      const tokens = await this.#policy!.encodeVideo(pixels);
      this.#visualTokenCount = tokens.shape[0]!;
      if (!trainsTower) {
        pixels.dispose();
        return this.#keep(path, tokens);
      }
      tokens.dispose();
    }
    return this.#keep(path, pixels);
  }

  #cachedBytes = 0;

  #keep(path: string, t: Tensor): Tensor {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * 4;
    if (this.#cachedBytes + bytes <= VIDEO_CACHE_BYTES) {
      this.#videos.set(path, t);
      this.#cachedBytes += bytes;
    }
    return t;
  }

  /** How many embeddings replace the image id (for truncation budgets): measured on the first video. */
  #visualTokenCount = 0;

  #visualTokens(): number {
    return this.#visualTokenCount;
  }

  async #pairInputs(batch: Batch<PreferencePair>, reference?: Map<string, [number, number]>): Promise<NativePair[]> {
    const out: NativePair[] = [];
    for (const group of batch.groups) {
      const video = await this.#video(group.videoPath);
      for (const record of group.records) {
        // A pair whose answers are the same teaches nothing and its loss is constant: report it and go on.
        if (record.chosen.trim() === record.rejected.trim()) {
          this.skipped.push({ id: record.id, reason: 'chosen and rejected are identical' });
          continue;
        }
        const inputs = encodePair(this.#tokenizer!, record, { maxLength: this.config.maxLength, visualTokens: this.#visualTokens() });
        out.push({
          prompt: ids(inputs.promptIds), chosen: ids(inputs.chosenIds), rejected: ids(inputs.rejectedIds),
          ...(video ? { video } : {}), ...(reference?.has(record.id) ? { reference: reference.get(record.id)! } : {}),
        });
      }
    }
    return out;
  }

  async #sftInputs(batch: Batch<SftRecord>) {
    const out: { prompt: Tensor; answer: Tensor; video?: Tensor }[] = [];
    for (const group of batch.groups) {
      const video = await this.#video(group.videoPath);
      for (const record of group.records) {
        const inputs = encodeSft(this.#tokenizer!, record, { maxLength: this.config.maxLength, visualTokens: this.#visualTokens() });
        out.push({
          prompt: ids(inputs.inputIds.subarray(0, inputs.promptLength)), answer: ids(inputs.inputIds.subarray(inputs.promptLength)),
          ...(video ? { video } : {}),
        });
      }
    }
    return out;
  }

  /**
   * Reference log-probs of every pair under the starting weights, cached across runs in the tpo cache folder under
   * a key of the dataset's bytes, the model's config and weight headers, and the input settings.
   */
  async #precompute(records: PreferencePair[]): Promise<Map<string, [number, number]>> {
    const c = this.config;
    const hash = createHash('sha256');
    hash.update(await readFile(c.data.train));
    hash.update(await readFile(join(c.model, 'config.json')));
    for (const t of (await readSafetensorsHeader(c.model)).tensors) hash.update(`${t.name}:${t.dtype}:${t.shape}:${t.byteLength}`);
    hash.update(JSON.stringify({ frames: c.frames, maxLength: c.maxLength, videoRoot: c.data.videoRoot }));
    const folder = join(cacheDir(), 'reference-logps');
    await mkdir(folder, { recursive: true });
    const file = join(folder, `${hash.digest('hex').slice(0, 32)}.json`);
    if (existsSync(file)) return new Map(Object.entries(JSON.parse(await readFile(file, 'utf8')) as Record<string, [number, number]>));
    const out = new Map<string, [number, number]>();
    const policy = this.#policy!;
    if (this.config.lora) policy.setLoraEnabled(false);
    try {
      for (const batch of videoBatches(records, { batchSize: this.config.batchSize, shuffle: false })) {
        const pairs = await this.#pairInputs(batch);
        const r = await preferenceForward(policy, pairs, { loss: { referenceFree: true }, referenceMode: 'none', batchPairs: this.config.batchPairs });
        const pc = r.policyChosen.toTypedArray() as Float32Array;
        const pr = r.policyRejected.toTypedArray() as Float32Array;
        batch.records.filter((rec) => rec.chosen.trim() !== rec.rejected.trim()).forEach((rec, i) => out.set(rec.id, [pc[i]!, pr[i]!]));
      }
    } finally {
      if (this.config.lora) policy.setLoraEnabled(true);
    }
    await writeJsonFile(file, Object.fromEntries(out));
    return out;
  }

  async #checkpoint(step: number, optimizer: Optimizer, epoch: number): Promise<string> {
    const c = this.config;
    const dir = join(c.output, `checkpoint-${step}`);
    if (existsSync(dir)) return dir;  // resumed at the end of a finished run: that checkpoint is this state
    const temp = join(c.output, `.checkpoint-${step}.tmp-${process.pid}`);
    await rm(temp, { recursive: true, force: true });
    await mkdir(temp, { recursive: true });
    if (c.lora) await this.#policy!.saveLora(temp);
    else {
      await this.#policy!.save(temp);
      await copyModelFiles(c.model, temp);
    }
    await optimizer.saveState(join(temp, 'optimizer.safetensors'));
    await writeJsonFile(join(temp, 'trainer_state.json'), { step, epoch, seed: c.seed, config: c });
    await rename(temp, dir);  // the checkpoint exists whole, or not at all
    const old = (await readdir(c.output)).map((n) => /^checkpoint-(\d+)$/.exec(n)?.[1]).filter((s): s is string => !!s)
      .map(Number).sort((a, b) => b - a).slice(c.checkpoint.keepLast);
    for (const s of old) await rm(join(c.output, `checkpoint-${s}`), { recursive: true, force: true });
    this.emit('checkpoint', { step, dir });
    return dir;
  }

  /** Drops metrics logged after `step` (a run killed after its last checkpoint logged steps it will redo). */
  async #trimMetrics(step: number): Promise<void> {
    const file = join(this.config.output, 'metrics.jsonl');
    if (!existsSync(file)) return;
    const kept: unknown[] = [];
    for (const line of (await readFile(file, 'utf8')).split('\n')) {
      try {
        const record = JSON.parse(line) as { step: number };
        if (record.step <= step) kept.push(record);
      } catch {
        // an empty line, or one torn by the kill
      }
    }
    await writeJsonl(file, kept);
  }

  async fit(options: { signal?: AbortSignal; resume?: boolean } = {}): Promise<FitResult> {
    const c = this.config;
    await mkdir(c.output, { recursive: true });
    for (const name of await readdir(c.output)) if (name.startsWith('.checkpoint-')) await rm(join(c.output, name), { recursive: true, force: true });
    const resume = options.resume ? await this.latestCheckpoint() : undefined;
    await this.#loadModels(resume?.dir);
    const policy = this.#policy!;
    try {
      const records: (PreferencePair | SftRecord)[] = this.#preference
        ? await readPairs(c.data.train, { videoRoot: c.data.videoRoot }).toArray()
        : await readSft(c.data.train, { videoRoot: c.data.videoRoot }).toArray();
      if (records.length === 0) throw new Error(`${c.data.train}: no records`);
      if (this.#processor) await assertVideosExist(records);
      const perEpoch = Math.ceil(records.length / c.batchSize);
      const total = c.maxSteps ?? c.epochs * perEpoch;
      const peak = c.lr ?? (c.preset ? PRESETS[c.preset].lr : 1e-5);
      const optimizer = new Optimizer(policy, c.optimizer, this.#reference);
      let step = 0;
      if (resume) {
        await optimizer.loadState(join(resume.dir, 'optimizer.safetensors'));
        step = resume.step;
        await this.#trimMetrics(step);
      } else {
        await rm(join(c.output, 'metrics.jsonl'), { force: true });
      }
      const reference = this.#preference && this.#referenceMode() === 'precomputed'
        ? await this.#precompute(records as PreferencePair[]) : undefined;
      const epochs = new Map<number, Batch<PreferencePair | SftRecord>[]>();
      for (; step < total; step++) {
        if (options.signal?.aborted) {
          await this.#checkpoint(step, optimizer, Math.floor(step / perEpoch));
          return { steps: step, stopped: 'aborted' };
        }
        const epoch = Math.floor(step / perEpoch);
        if (!epochs.has(epoch)) epochs.set(epoch, videoBatches(records, { batchSize: c.batchSize, seed: c.seed, epoch }));
        const batch = epochs.get(epoch)![step % perEpoch]!;
        const lr = learningRate(peak, step, total, c.schedule);
        const started = performance.now();
        let result;
        try {
          if (this.#preference) {
            const pairs = await this.#pairInputs(batch as Batch<PreferencePair>, reference);
            if (pairs.length === 0) continue;
            result = await optimizer.preferenceStep({
              microBatches: split(pairs, c.gradientAccumulation), lr, loss: this.#loss(), referenceMode: this.#referenceMode(),
              batchPairs: c.batchPairs,
            });
          } else {
            result = await optimizer.sftStep({ microBatches: split(await this.#sftInputs(batch as Batch<SftRecord>), c.gradientAccumulation), lr });
          }
        } catch (error) {
          if (!/is not finite/.test((error as Error).message)) throw error;
          const which = batch.records.map((r) => r.id).join(', ');
          if (c.onNonFinite === 'stop') throw new Error(`${(error as Error).message} (records: ${which})`);
          for (const r of batch.records) this.skipped.push({ id: r.id, reason: `step ${step + 1}: non-finite loss` });
          continue;
        }
        const seconds = (performance.now() - started) / 1000;
        const metrics = { ...result.metrics, [this.#preference ? 'pairs/s' : 'records/s']: batch.records.length / seconds, 'tokens/s': result.tokens / seconds };
        const line = { step: step + 1, epoch, ...metrics };
        await writeFile(join(c.output, 'metrics.jsonl'), JSON.stringify(line) + '\n', { flag: 'a' });
        this.emit('step', { step: step + 1, total, epoch, metrics });
        if ((step + 1) % c.checkpoint.every === 0 && step + 1 < total) await this.#checkpoint(step + 1, optimizer, epoch);
        if (c.evalEvery > 0 && (step + 1) % c.evalEvery === 0) await this.evaluate(step + 1);
      }
      await this.#checkpoint(total, optimizer, Math.floor(total / perEpoch));
      if (c.data.validation) await this.evaluate(total);
      const final = join(c.output, 'final');
      // Written beside it and renamed, so final/ is whole or absent; full weights get the model folder's tokenizer
      // and preprocessor files too, so final/ loads as a model on its own.
      const temp = join(c.output, `.final.tmp-${process.pid}`);
      await rm(temp, { recursive: true, force: true });
      if (c.lora && !c.export.merge) {
        await policy.saveLora(temp);
      } else {
        if (c.lora) policy.mergeLora();
        await policy.save(temp);
        await copyModelFiles(c.model, temp);
      }
      await rm(final, { recursive: true, force: true });
      await rename(temp, final);
      return { steps: total, final, stopped: 'done' };
    } finally {
      policy.dispose();
      this.#reference?.dispose();
      for (const t of this.#videos.values()) t.dispose();
      this.#videos.clear();
    }
  }

  /** Preference accuracy and loss on the validation file. */
  async evaluate(step: number): Promise<Record<string, number>> {
    const c = this.config;
    if (!c.data.validation || !this.#preference) return {};
    const records = await readPairs(c.data.validation, { videoRoot: c.data.videoRoot }).toArray();
    let correct = 0, loss = 0, n = 0;
    for (const batch of videoBatches(records, { batchSize: c.batchSize, shuffle: false })) {
      const pairs = await this.#pairInputs(batch);
      const out = await preferenceForward(this.#policy!, pairs, { loss: this.#loss(), referenceMode: this.#referenceMode() === 'precomputed' ? 'lora-disabled' : this.#referenceMode() }, this.#reference);
      const m = preferenceMetrics(out);
      correct += m['rewards/accuracies']! * pairs.length;
      loss += m.loss! * pairs.length;
      n += pairs.length;
    }
    const metrics = { 'eval/rewards/accuracies': correct / Math.max(1, n), 'eval/loss': loss / Math.max(1, n) };
    await writeFile(join(c.output, 'metrics.jsonl'), JSON.stringify({ step, ...metrics }) + '\n', { flag: 'a' });
    this.emit('eval', { step, epoch: -1, metrics });
    return metrics;
  }
}

/** A batch cut into `parts` micro-batches (as even as possible, none empty). */
function split<T>(items: T[], parts: number): T[][] {
  const n = Math.min(parts, items.length);
  return Array.from({ length: n }, (_, i) => items.slice(Math.floor((i * items.length) / n), Math.floor(((i + 1) * items.length) / n)));
}
