// The training loop: data in, one native step per optimizer step, metrics out, checkpoints that survive a crash.
//
//   records (JSONL) -> batches grouped by video (seeded, per epoch) -> decode + preprocess each video once
//   -> token ids (chat template, <image>) -> Optimizer.preferenceStep / sftStep -> metrics.jsonl, checkpoints
//
// A step's batch is a function of (seed, epoch, index) alone and the optimizer's state is saved with the weights,
// so a run resumed from checkpoint-<k> computes exactly the steps an uninterrupted run would have. A run folder
// holds one run (run.json records its identity): another run in it is refused unless `overwrite` says so.
//
// Data parallelism (torchrun's variables, `tpo train --nproc N`): every rank reads the data and cuts each step's
// batch the same way; rank r trains on its contiguous share (gradientAccumulation micro-batches of it) and the
// native step sums the gradients over the ranks, so N ranks compute what one process computes with N times the
// micro-batches. Rank 0 decides what the run folder holds and writes it (metrics, checkpoints, final/); the
// reference precompute and validation are sharded by batch and gathered.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { encodePair, encodeSft } from '../data/encode.js';
import { contiguousParts, Group, roundRobin } from '../dist/group.js';
import { writeJsonFile } from '../data/jsonl.js';
import { readPairs, readSft, type PreferencePair, type SftRecord } from '../data/records.js';
import { assertVideosExist, type Batch, groupByVideo, videoBatches } from '../data/videos.js';
import { cacheDir } from '../libtorch.js';
import { fileDigest, modelDigest } from '../model/digest.js';
import { prepareOutputDir } from '../paths.js';
import { copyModelFiles } from '../model/files.js';
import { isVideoError, ModelSession, type VideoPixels } from '../model/session.js';
import { VideoLM } from '../model/video-lm.js';
import { type NativePair, type NativeSftRecord, type NativeVideoInput, type PreferenceMetrics, type Tensor } from '../native.js';
import { tensor } from '../tensor.js';
import { parse } from '../validate.js';
import { packageVersion } from '../version.js';
import { PRESETS, type ResolvedTrainConfig, TrainConfig } from './config.js';
import { LossConfig, lossTypes, needsReference } from './loss.js';
import { Optimizer } from './optimizer.js';
import { preferenceForward } from './preference.js';
import { type Checkpoint, RunFolder, type RunRecord } from './run-folder.js';
import { learningRate } from './schedule.js';
import { TensorBoardWriter } from './tensorboard.js';

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

/** A run folder that holds something else than this run, or a resume that cannot be (code ERR_TPO_RUN_FOLDER). */
export class RunFolderError extends Error {
  readonly code = 'ERR_TPO_RUN_FOLDER';
  constructor(message: string) {
    super(message);
    this.name = 'RunFolderError';
  }
}

/** A run whose every batch was skipped (code ERR_TPO_NOTHING_TRAINED): no final/ is written. */
export class NothingTrainedError extends Error {
  readonly code = 'ERR_TPO_NOTHING_TRAINED';
  constructor(message: string) {
    super(message);
    this.name = 'NothingTrainedError';
  }
}

/** The native step's code for a loss or gradient norm that is not finite (the weights were left as they were). */
const NON_FINITE = 'ERR_TPO_NON_FINITE';

const ids = (a: Int32Array | number[]) => tensor(Int32Array.from(a), [a.length]);

/** Decoded videos (or their visual tokens) kept across steps, at most this many bytes. */
const VIDEO_CACHE_BYTES = 2 * 1024 ** 3;

type References = Map<string, [number, number]>;

/** A batch's inputs, and the records they are (records without inputs were skipped). */
interface Inputs<T> {
  items: T[];
  ids: string[];
}

const identical = (r: PreferencePair) => r.chosen.trim() === r.rejected.trim();

export class Trainer extends EventEmitter<{
  step: [StepEvent]; eval: [StepEvent]; checkpoint: [{ step: number; dir: string }]; notice: [string];
}> {
  readonly config: ResolvedTrainConfig;
  #session?: ModelSession;
  #reference?: VideoLM;
  #videos = new Map<string, NativeVideoInput>();
  /** Event files beside metrics.jsonl while fit runs (config.tensorboard). */
  #tensorboard?: TensorBoardWriter;
  /** Videos that failed to decode (path -> why), skipped for the rest of the run. */
  #badVideos = new Map<string, string>();
  /** Records left out, and why (identical answers, undecodable videos, non-finite losses when onNonFinite is skip). */
  readonly skipped: { id: string; reason: string }[] = [];
  /** The process group while fit runs as one rank of several. */
  #group?: Group;

  /** `source` names the config in errors (the file it came from). */
  constructor(config: TrainConfig, source = 'train config') {
    super();
    this.config = parse(TrainConfig, config, source);
    // The loss as the preset and objective complete it, checked once here so the error names the config.
    if (this.#preference) parse(LossConfig, this.#lossFields(), `${source}: loss (with the preset's and objective's defaults)`);
  }

  get #preference(): boolean {
    return this.config.objective !== 'sft';
  }

  /** The loss with every field resolved: the config's, then the preset's, then the objective's, then the defaults. */
  #loss() {
    return LossConfig.parse(this.#lossFields());
  }

  #lossFields() {
    const preset = this.config.preset ? PRESETS[this.config.preset] : undefined;
    const loss = { ...(preset?.loss ?? {}), ...this.config.loss };
    // tpo's SFT term is an sft entry of weight sftWeight, unless the type list has its own sft entry.
    const listsSft = lossTypes(loss.type).includes('sft');
    if (this.config.objective === 'dpo' || listsSft) loss.sftWeight = this.config.loss.sftWeight ?? 0;
    else if (this.config.objective === 'tpo') loss.sftWeight = loss.sftWeight ?? 1;
    return loss;
  }

  #referenceMode() {
    if (this.config.reference) return this.config.reference;
    if (!needsReference(this.#loss())) return 'none';  // sft, simpo, orpo or reference-free: no reference model
    return this.config.lora ? 'lora-disabled' : 'frozen-copy';
  }

  #peakLr(): number {
    return this.config.lr ?? (this.config.preset ? PRESETS[this.config.preset].lr : 1e-5);
  }

  /** The tower's and the projector's peak rates as multiples of the peak lr: the schedule scales all three alike. */
  #partLrScales(): { visionLrScale: number; projectorLrScale: number } {
    const peak = this.#peakLr();
    return { visionLrScale: (this.config.visionLr ?? peak) / peak, projectorLrScale: (this.config.projectorLr ?? peak) / peak };
  }

  /** What the trainer does that a user should hear of (a resume that starts over, an overwrite): the 'notice'
   * listeners, else stderr. */
  #notice(message: string): void {
    if (this.listenerCount('notice') > 0) this.emit('notice', message);
    else process.stderr.write(`tpo train: ${message}\n`);
  }

  /** The latest complete checkpoint: a folder is renamed into place only once whole. */
  async latestCheckpoint(): Promise<Checkpoint | undefined> {
    return RunFolder.at(this.config.output).latest();
  }

  async #loadModels(resumeFrom?: string): Promise<void> {
    const c = this.config;
    const fullCheckpoint = resumeFrom && !c.lora;
    const load = { device: c.device, dtype: c.dtype };
    this.#session = await ModelSession.open(c.model, fullCheckpoint ? { weights: resumeFrom, load } : { load });
    const policy = this.#session.model;
    if (c.lora) {
      if (resumeFrom) await policy.loadLora(resumeFrom);
      else policy.addLora({ ...c.lora, seed: c.seed });
    }
    policy.setTrainable({ ...c.train, language: this.#trainsLanguage(), lora: true });
    policy.setGradientCheckpointing(c.gradientCheckpointing);
    if (this.#preference && this.#referenceMode() === 'frozen-copy') this.#reference = await VideoLM.load(c.model, load);
  }

  /** Whether the language model's own weights train (not only LoRA adapters): asked for, or the default of a full fine-tune. */
  #trainsLanguage(): boolean {
    const { lora, train } = this.config;
    return train.language || (!lora && !train.vision && !train.projector);
  }

  // ------------------------------------------------------------------------------------------------ videos

  /**
   * A video as the step takes it, in its own layout (what eval encodes): VideoLLaMA3's time stamps (frameText),
   * Qwen2.5-VL's seconds per temporal patch and, with its tokens, their grid. With the tower and projector frozen its
   * visual tokens never change: they are encoded once and kept across steps and epochs. Otherwise its preprocessed
   * frames are kept (up to VIDEO_CACHE_BYTES, so an epoch decodes each video once) with their layout, and the step
   * encodes them once per micro-batch. A video that cannot be decoded is `{ skip }` (onVideoError skip) or the run's
   * error (stop).
   */
  async #video(path: string): Promise<{ video?: NativeVideoInput } | { skip: string }> {
    const session = this.#session!;
    if (!session.processor) return {};
    const bad = this.#badVideos.get(path);
    if (bad) return { skip: bad };
    const cached = this.#videos.get(path);
    if (cached) return { video: cached };
    let decoded: VideoPixels;
    try {
      decoded = await session.pixels(path, { kind: 'uniform', frames: this.config.frames });
    } catch (error) {
      if (!isVideoError(error) || this.config.onVideoError === 'stop') throw error;
      const reason = `video: ${error.message}`;
      this.#badVideos.set(path, reason);
      this.#notice(`skipping ${path} and its records: ${error.message}`);
      return { skip: reason };
    }
    // Tokens encoded here once are constants of every step: right while what makes them is frozen. Frame text
    // (InternVL's "FrameN: <img>" ... "</img>", VideoLLaMA3's time stamps) is embedded among them by embed_tokens,
    // which a run that trains the language model's own weights updates, so such a run keeps the frames and encodes
    // them in each step, where the frame text's embeddings get their gradient.
    const encodesInStep = this.config.train.vision || this.config.train.projector ||
      ((session.model.hasFrameText || decoded.frameText !== undefined) && this.#trainsLanguage());
    const { pixels, frameText, secondPerGridTs } = decoded;
    const seconds = secondPerGridTs === undefined ? {} : { secondPerGridTs };
    if (!encodesInStep || this.#visualTokenCount === 0) {
      const encoded = await session.encode(decoded);
      this.#visualTokenCount = encoded.tokens.shape[0]!;
      if (!encodesInStep) {
        pixels.dispose();
        // (Qwen2.5-VL's tokens with the grid they were made on, from which their M-RoPE positions follow)
        const { videoGridThw } = encoded.video;
        return { video: this.#keep(path, { video: encoded.tokens, ...(videoGridThw ? { videoGridThw } : {}), ...seconds }) };
      }
      encoded.tokens.dispose();
      encoded.video.videoGridThw?.dispose();
    }
    return { video: this.#keep(path, { video: pixels, ...(frameText ? { frameText } : {}), ...seconds }) };
  }

  #cachedBytes = 0;

  #keep(path: string, v: NativeVideoInput & { video: Tensor }): NativeVideoInput {
    const bytes = v.video.shape.reduce((a, b) => a * b, 1) * 4;
    if (this.#cachedBytes + bytes <= VIDEO_CACHE_BYTES) {
      this.#videos.set(path, v);
      this.#cachedBytes += bytes;
    }
    return v;
  }

  /** How many embeddings replace the image id (for truncation budgets): measured on the first video. */
  #visualTokenCount = 0;

  // ------------------------------------------------------------------------------------------------ inputs

  /**
   * A batch's pairs as the native step takes them. `report`: a record left out (identical answers, an
   * undecodable video) is added to `skipped` (training steps report; precomputation and validation do not).
   */
  async #pairInputs(batch: Batch<PreferencePair>, report: boolean, reference?: References): Promise<Inputs<NativePair>> {
    const out: Inputs<NativePair> = { items: [], ids: [] };
    for (const group of batch.groups) {
      const v = await this.#video(group.videoPath);
      for (const record of group.records) {
        // A pair whose answers are the same teaches nothing and its loss is constant: report it and go on.
        const skip = 'skip' in v ? v.skip : identical(record) ? 'chosen and rejected are identical' : undefined;
        if (skip) {
          if (report) this.skipped.push({ id: record.id, reason: skip });
          continue;
        }
        const video = 'video' in v ? v.video : undefined;
        const inputs = encodePair(this.#session!.tokenizer, record, { maxLength: this.config.maxLength, visualTokens: this.#visualTokenCount });
        out.items.push({
          prompt: ids(inputs.promptIds), chosen: ids(inputs.chosenIds), rejected: ids(inputs.rejectedIds),
          ...video, ...(reference?.has(record.id) ? { reference: reference.get(record.id)! } : {}),
        });
        out.ids.push(record.id);
      }
    }
    return out;
  }

  async #sftInputs(batch: Batch<SftRecord>): Promise<Inputs<NativeSftRecord>> {
    const out: Inputs<NativeSftRecord> = { items: [], ids: [] };
    for (const group of batch.groups) {
      const v = await this.#video(group.videoPath);
      for (const record of group.records) {
        if ('skip' in v) {
          this.skipped.push({ id: record.id, reason: v.skip });
          continue;
        }
        const inputs = encodeSft(this.#session!.tokenizer, record, { maxLength: this.config.maxLength, visualTokens: this.#visualTokenCount });
        out.items.push({
          prompt: ids(inputs.inputIds.subarray(0, inputs.promptLength)), answer: ids(inputs.inputIds.subarray(inputs.promptLength)),
          ...v.video,
        });
        out.ids.push(record.id);
      }
    }
    return out;
  }

  // ------------------------------------------------------------------------------------------------ references

  /**
   * Reference log-probs of every pair of `file` under the run's starting weights, cached across runs in the tpo
   * cache folder under a key of content: the weights' and tokenizer's bytes, the dataset's bytes, each video's
   * path, size and modification time, and the input settings. Two models with the same shapes never share one.
   */
  async #precompute(file: string, records: PreferencePair[], resumed: boolean): Promise<References> {
    const c = this.config;
    const ldAlpha = this.#loss().ldAlpha;  // LD-DPO weighs the reference's log-probs too (TRL's compute_ref_log_probs)
    const videos = [...new Set(records.map((r) => r.videoPath))].sort();
    const videoIds = await Promise.all(videos.map(async (v) => {
      const s = await stat(v).catch(() => undefined);
      return [v, s?.size ?? null, s?.mtimeMs ?? null];
    }));
    const key = createHash('sha256').update(JSON.stringify({
      version: 2, model: await modelDigest(c.model), data: await fileDigest(file), videos: videoIds,
      frames: c.frames, maxLength: c.maxLength ?? null, batchPairs: c.batchPairs, ...(ldAlpha !== undefined ? { ldAlpha } : {}),
    })).digest('hex').slice(0, 32);
    const folder = join(cacheDir(), 'reference-logps');
    const cached = join(folder, `${key}.json`);
    // Rank 0's cache decides for every rank (a rank on another machine has a cache of its own).
    const found = await this.#decide('reading the reference log-probs cache', async () => {
      prepareOutputDir(folder, 'the tpo cache folder (TPO_CACHE_DIR)');
      return existsSync(cached) ? JSON.parse(await readFile(cached, 'utf8')) as Record<string, [number, number]> : null;
    });
    if (found) return new Map(Object.entries(found));

    // The starting weights: with LoRA, the policy with its adapters off; without, the policy unless it was loaded
    // from a checkpoint, then the model folder's own weights, loaded for this pass.
    const policy = this.#session!.model;
    const separate = !c.lora && resumed ? await VideoLM.load(c.model, { device: c.device, dtype: c.dtype }) : undefined;
    const model = separate ?? policy;
    if (c.lora) policy.setLoraEnabled(false);
    let out: References = new Map();
    const group = this.#group;
    try {
      const batches = videoBatches(records, { batchSize: c.batchSize, shuffle: false });
      for (const batch of group ? roundRobin(batches, group.rank, group.size) : batches) {
        const inputs = await this.#pairInputs(batch, false);
        if (inputs.items.length === 0) continue;
        const loss = { referenceFree: true, ...(ldAlpha !== undefined ? { ldAlpha } : {}) };
        const r = await preferenceForward(model, inputs.items, { loss, referenceMode: 'none', batchPairs: c.batchPairs });
        const pc = r.chosenLogps.toTypedArray() as Float32Array;
        const pr = r.rejectedLogps.toTypedArray() as Float32Array;
        inputs.ids.forEach((id, i) => out.set(id, [pc[i]!, pr[i]!]));
      }
    } finally {
      if (c.lora) policy.setLoraEnabled(true);
      separate?.dispose();
    }
    if (group) {
      const shards = await group.allGather(Object.fromEntries(out), 'gathering the reference log-probs');
      out = new Map(shards.flatMap((shard) => Object.entries(shard)));
    }
    if (!group || group.isMain) await writeJsonFile(cached, Object.fromEntries(out));
    return out;
  }

  // ------------------------------------------------------------------------------------------------ the run folder

  /** What decides the run's trajectory: the same for a resumed run, different for any other. */
  async #trajectory(total: number): Promise<Record<string, unknown>> {
    const c = this.config;
    return {
      model: resolve(c.model), modelDigest: await modelDigest(c.model),
      data: { train: resolve(c.data.train), digest: await fileDigest(c.data.train), videoRoot: c.data.videoRoot ? resolve(c.data.videoRoot) : null },
      objective: c.objective, loss: this.#preference ? this.#loss() : null, reference: this.#preference ? this.#referenceMode() : null,
      lora: c.lora ?? null, train: c.train, lr: this.#peakLr(), optimizer: c.optimizer, schedule: c.schedule,
      batchSize: c.batchSize, gradientAccumulation: c.gradientAccumulation, epochs: c.epochs, maxSteps: c.maxSteps ?? null,
      steps: total, seed: c.seed, frames: c.frames, batchPairs: c.batchPairs, maxLength: c.maxLength ?? null,
      onNonFinite: c.onNonFinite, onVideoError: c.onVideoError,
      // Only when set, so that runs made before the field existed keep their identity.
      ...(c.dtype ? { dtype: c.dtype } : {}),
      ...(c.visionLr !== undefined ? { visionLr: c.visionLr } : {}),
      ...(c.projectorLr !== undefined ? { projectorLr: c.projectorLr } : {}),
    };
  }

  /**
   * Makes the folder this run's, or says why it cannot be: a fresh folder is claimed (run.json); this run's own
   * folder continues from its latest checkpoint with `resume`; anything else is refused unless `overwrite` clears it.
   */
  async #claim(folder: RunFolder, total: number, resume: boolean): Promise<Checkpoint | undefined> {
    const c = this.config;
    const trajectory = await this.#trajectory(total);
    const identity = createHash('sha256').update(JSON.stringify(trajectory)).digest('hex');
    const record: RunRecord = { identity, trajectory, tpo: packageVersion(), created: new Date().toISOString() };
    // A run.json alone is a claim by a run that failed before its first step (a bad model path): not yet a run.
    const artifacts = (await folder.artifacts()).filter((a, _, all) => all.length > 1 || a !== 'run.json');
    if (artifacts.length === 0 || c.overwrite) {
      if (artifacts.length) {
        this.#notice(`overwrite: removing ${artifacts.sort().join(', ')} from ${c.output}`);
        await folder.clear();
      }
      await folder.writeRecord(record);
      return undefined;
    }
    const how = 'use another output folder, or overwrite: true (tpo train --force) to delete it and start this run';
    const latest = await folder.latest();
    const previous = await folder.readRecord();
    if (!previous) {
      throw new RunFolderError(`${c.output} holds ${artifacts.sort().join(', ')} of a run tpo cannot identify (no run.json); ${how}`);
    }
    if (previous.identity !== identity) {
      const changed = changedFields(previous.trajectory, trajectory);
      // The same run made shorter: the checkpoint would be resumed past the new end and saved under its step.
      if (resume && latest && latest.step > total && changed.every((k) => LENGTH_FIELDS.has(k))) {
        throw new RunFolderError(`${latest.dir} is past this run's last step (${total}): resuming from it would save later ` +
          `weights under an earlier step. Give maxSteps >= ${latest.step}, or ${how}`);
      }
      throw new RunFolderError(`${c.output} holds another run (${join(c.output, 'run.json')}): ` +
        `${describeChanges(changed, previous.trajectory, trajectory)}; ${how}`);
    }
    if (!resume) {
      const where = existsSync(folder.finalDir) ? 'finished (final/)' : `up to step ${latest?.step ?? 0}`;
      throw new RunFolderError(`${c.output} holds this run, ${where}: --resume (fit({ resume: true })) continues it; ` +
        'overwrite: true (tpo train --force) starts it over');
    }
    if (!latest) {
      const redone = await folder.trimMetrics(0);
      this.#notice(`--resume: ${c.output} has no checkpoint yet: starting at step 0` +
        (redone ? ` (the ${redone} metrics line(s) logged before the interruption are redone)` : ''));
    }
    return latest;
  }

  /**
   * checkpoint-<step>/, whole or absent, written by rank 0. With a sharded optimizer every rank writes its part
   * (optimizer-<rank>-of-<size>.safetensors) into rank 0's temporary folder before rank 0 renames it.
   */
  async #checkpoint(folder: RunFolder, step: number, optimizer: Optimizer, epoch: number): Promise<string> {
    const c = this.config;
    const group = this.#group;
    const dir = folder.checkpointDir(step);
    // Resumed at the end of a finished run: that checkpoint is this state.
    if (await this.#decide('checking for the checkpoint', async () => existsSync(dir))) return dir;
    const sharded = group !== undefined && c.distributed.shardOptimizer;
    const shard = (rank: number) => `optimizer-${String(rank).padStart(5, '0')}-of-${String(group!.size).padStart(5, '0')}.safetensors`;
    if (group && !group.isMain) {
      if (sharded) {
        const [temp] = await group.allGather<string | null>(null, 'sharing the checkpoint folder');
        await optimizer.saveState(join(temp!, shard(group.rank)));
        await group.barrier('writing the optimizer shards');
      }
      return dir;
    }
    const policy = this.#session!.model;
    await folder.writeFolder(`checkpoint-${step}`, async (temp) => {
      await mkdir(temp, { recursive: true });
      if (c.lora) await policy.saveLora(temp);
      else {
        await policy.save(temp);
        await copyModelFiles(c.model, temp);
      }
      if (sharded) {
        await group.allGather(temp, 'sharing the checkpoint folder');
        await optimizer.saveState(join(temp, shard(0)));
        await group.barrier('writing the optimizer shards');
      } else {
        await optimizer.saveState(join(temp, 'optimizer.safetensors'));
      }
      await writeJsonFile(join(temp, 'trainer_state.json'), { step, epoch, seed: c.seed, worldSize: group?.size ?? 1, config: c });
    });
    await folder.rotate(c.checkpoint.keepLast, step);
    this.emit('checkpoint', { step, dir });
    return dir;
  }

  /** A checkpoint's optimizer state: one file, or the shards of a sharded one (at any world size). */
  async #optimizerFiles(dir: string): Promise<string | string[]> {
    const single = join(dir, 'optimizer.safetensors');
    if (existsSync(single)) return single;
    const shards = (await readdir(dir)).filter((n) => /^optimizer-\d{5}-of-\d{5}\.safetensors$/.test(n)).sort();
    if (shards.length === 0) throw new RunFolderError(`${dir}: no optimizer state (optimizer.safetensors or optimizer-*-of-*.safetensors)`);
    const count = Number(shards[0]!.slice(-17, -12));
    if (shards.length !== count) throw new RunFolderError(`${dir}: ${shards.length} of the ${count} optimizer shards are there`);
    return shards.map((n) => join(dir, n));
  }

  /** Rank 0's `decide()` on every rank (one process: `decide()`). */
  async #decide<T>(what: string, decide: () => Promise<T>): Promise<T> {
    return this.#group ? this.#group.decide(what, decide) : decide();
  }

  // ------------------------------------------------------------------------------------------------ the loop

  async #readRecords(): Promise<(PreferencePair | SftRecord)[]> {
    const c = this.config;
    const records: (PreferencePair | SftRecord)[] = this.#preference
      ? await readPairs(c.data.train, { videoRoot: c.data.videoRoot }).toArray()
      : await readSft(c.data.train, { videoRoot: c.data.videoRoot }).toArray();
    if (records.length === 0) throw new NothingTrainedError(`${c.data.train}: no records: nothing to train`);
    if (this.#preference && (records as PreferencePair[]).every(identical)) {
      throw new NothingTrainedError(`${c.data.train}: every pair's chosen and rejected answers are the same ` +
        `(${records.length} pair${records.length === 1 ? '' : 's'}): a preference loss has nothing to learn from them`);
    }
    return records;
  }

  /** Why nothing was trained, from what was skipped. */
  #nothingTrained(): NothingTrainedError {
    const reasons = new Map<string, number>();
    for (const s of this.skipped) {
      const reason = s.reason.replace(/^step \d+: /, '');
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    }
    const why = [...reasons].map(([r, n]) => `${n} x ${r}`).slice(0, 5).join('; ');
    return new NothingTrainedError(`${this.config.data.train}: every batch was skipped, nothing was trained ` +
      `(${why || 'no batch had a record to train on'}); final/ is not written`);
  }

  /**
   * Runs the training. As one rank of several (torchrun's variables, or `group`), every rank calls fit with the
   * same config; the group is closed when every rank is done (after an error it is dropped, and the other ranks'
   * next collective fails naming this rank).
   */
  async fit(options: { signal?: AbortSignal; resume?: boolean; group?: Group } = {}): Promise<FitResult> {
    const group = options.group ?? await Group.fromEnvironment(this.config.distributed, { command: 'train', config: this.config });
    this.#group = group;
    let done = false;
    try {
      const result = await this.#fit(options);
      done = true;
      return result;
    } finally {
      this.#group = undefined;
      if (done && group && !options.group) await group.close();
    }
  }

  async #fit(options: { signal?: AbortSignal; resume?: boolean }): Promise<FitResult> {
    const c = this.config;
    const group = this.#group;
    const main = !group || group.isMain;
    // Rank 0 alone cleans and claims the folder (the others would remove its temporaries).
    const folder = main ? await RunFolder.open(c.output) : RunFolder.at(c.output);
    const records = await this.#readRecords();
    const perEpoch = Math.ceil(records.length / c.batchSize);
    const total = c.maxSteps ?? c.epochs * perEpoch;
    const resume = (await this.#decide('claiming the run folder', () => this.#claim(folder, total, options.resume ?? false))) ?? undefined;
    await this.#loadModels(resume?.dir);
    const policy = this.#session!.model;
    try {
      if (this.#session!.processor) await assertVideosExist(records);
      const peak = this.#peakLr();
      const parallel = group ? { group, bucketBytes: Math.round(c.distributed.bucketMB * 2 ** 20), shardOptimizer: c.distributed.shardOptimizer } : undefined;
      const optimizer = new Optimizer(policy, { ...c.optimizer, ...this.#partLrScales() }, this.#reference, parallel);
      let step = 0;
      if (resume) {
        await optimizer.loadState(await this.#optimizerFiles(resume.dir));
        step = resume.step;
        if (main) await folder.trimMetrics(step);
      }
      if (c.tensorboard && main) this.#tensorboard = await TensorBoardWriter.open(c.output, resume ? { resumeStep: step } : {});
      const precomputed = this.#preference && this.#referenceMode() === 'precomputed';
      const reference = precomputed ? await this.#precompute(c.data.train, records as PreferencePair[], !!resume) : undefined;
      const validation = precomputed && c.data.validation
        ? await this.#precompute(c.data.validation, await this.#validationRecords(), !!resume) : undefined;
      const epochs = new Map<number, Batch<PreferencePair | SftRecord>[]>();
      for (; step < total; step++) {
        if (await this.#aborted(options.signal)) {
          await this.#checkpoint(folder, step, optimizer, Math.floor(step / perEpoch));
          return { steps: step, stopped: 'aborted' };
        }
        const epoch = Math.floor(step / perEpoch);
        if (!epochs.has(epoch)) epochs.set(epoch, videoBatches(records, { batchSize: c.batchSize, seed: c.seed, epoch }));
        const batch = epochs.get(epoch)![step % perEpoch]!;
        const result = await this.#step(batch, step, total, peak, optimizer, reference);
        if (!result) continue;
        const metrics = { ...result.metrics, [this.#preference ? 'pairs/s' : 'records/s']: result.records / result.seconds, 'tokens/s': result.tokens / result.seconds };
        if (group) Object.assign(metrics, this.#commMetrics(group, result.seconds), { 'dist/optimizer_mb': optimizer.optimizerBytes / 2 ** 20 });
        if (main) await folder.appendMetrics({ step: step + 1, epoch, ...metrics });
        await this.#tensorboard?.scalars(step + 1, { ...metrics, epoch: (step + 1) / perEpoch });
        this.emit('step', { step: step + 1, total, epoch, metrics });
        if ((step + 1) % c.checkpoint.every === 0 && step + 1 < total) await this.#checkpoint(folder, step + 1, optimizer, epoch);
        if (c.evalEvery > 0 && (step + 1) % c.evalEvery === 0) await this.#evaluate(folder, step + 1, epoch, validation);
      }
      if (optimizer.steps === 0) throw this.#nothingTrained();
      await this.#checkpoint(folder, total, optimizer, Math.floor(total / perEpoch));
      if (c.data.validation) await this.#evaluate(folder, total, Math.floor(total / perEpoch), validation);
      if (!main) return { steps: total, final: folder.finalDir, stopped: 'done' };
      // Full weights get the model folder's tokenizer and preprocessor files too, so final/ loads on its own.
      const final = await folder.writeFolder('final', async (temp) => {
        if (c.lora && !c.export.merge) {
          await policy.saveLora(temp);
        } else {
          if (c.lora) policy.mergeLora();
          await policy.save(temp);
          await copyModelFiles(c.model, temp);
        }
      });
      return { steps: total, final, stopped: 'done' };
    } finally {
      await this.#tensorboard?.close();
      this.#tensorboard = undefined;
      this.#session!.dispose();
      this.#session = undefined;
      this.#reference?.dispose();
      for (const v of this.#videos.values()) {
        v.video?.dispose();
        v.videoGridThw?.dispose();
      }
      this.#videos.clear();
    }
  }

  /** Whether to stop before this step: the signal, on any rank (every rank stops at the same step). */
  async #aborted(signal?: AbortSignal): Promise<boolean> {
    const mine = signal?.aborted ?? false;
    if (!this.#group) return mine;
    const [ranks] = await this.#group.sum([mine ? 1 : 0], 'agreeing whether to stop');
    return ranks! > 0;
  }

  #commSeen = { seconds: 0, bytes: 0 };

  /** The step's communication: seconds in collectives and their share of the step, bytes this rank reduced. */
  #commMetrics(group: Group, seconds: number): Record<string, number> {
    const now = group.stats();
    const step = { seconds: now.seconds - this.#commSeen.seconds, bytes: now.bytes - this.#commSeen.bytes };
    this.#commSeen = { seconds: now.seconds, bytes: now.bytes };
    return { 'dist/comm_seconds': step.seconds, 'dist/comm_fraction': step.seconds / seconds, 'dist/comm_mb': step.bytes / 2 ** 20 };
  }

  /**
   * This rank's micro-batches of a step: the batch's records in the order one process trains them (by video),
   * cut into ranks x gradientAccumulation contiguous parts, rank r taking its gradientAccumulation parts (some
   * may be empty when the batch is small).
   */
  #shares<T extends PreferencePair | SftRecord>(records: T[]): Batch<T>[] {
    const c = this.config;
    const ranks = this.#group?.size ?? 1, rank = this.#group?.rank ?? 0;
    const parts = contiguousParts(records, ranks * c.gradientAccumulation).slice(rank * c.gradientAccumulation, (rank + 1) * c.gradientAccumulation);
    return parts.map((part, index) => ({ index, records: part, groups: groupByVideo(part) }));
  }

  /** One optimizer step on `batch`, or undefined when it was skipped (no record to train on, a non-finite loss). */
  async #step(
    batch: Batch<PreferencePair | SftRecord>, step: number, total: number, peak: number, optimizer: Optimizer, reference?: References,
  ): Promise<{ metrics: Record<string, number>; tokens: number; records: number; seconds: number } | undefined> {
    const c = this.config;
    const lr = learningRate(peak, step, total, c.schedule);
    const started = performance.now();
    const ordered = batch.groups.flatMap((g) => g.records);
    try {
      let result;
      if (this.#preference) {
        // A pair whose answers are the same teaches nothing and its loss is constant: reported (once) and left out
        // before the batch is shared out, so every rank's share is a share of the pairs that train.
        const pairs = (ordered as PreferencePair[]).filter((r) => {
          if (!identical(r)) return true;
          if (!this.#group || this.#group.isMain) this.skipped.push({ id: r.id, reason: 'chosen and rejected are identical' });
          return false;
        });
        const microBatches = [];
        for (const share of this.#shares(pairs)) microBatches.push((await this.#pairInputs(share, true, reference)).items);
        const mine = microBatches.filter((m) => m.length > 0);
        if (!this.#group && mine.length === 0) return undefined;
        result = await optimizer.preferenceStep({
          microBatches: mine, lr, loss: this.#loss(), referenceMode: this.#referenceMode(), batchPairs: c.batchPairs,
        });
      } else {
        const microBatches = [];
        for (const share of this.#shares(ordered as SftRecord[])) microBatches.push((await this.#sftInputs(share)).items);
        const mine = microBatches.filter((m) => m.length > 0);
        if (!this.#group && mine.length === 0) return undefined;
        result = await optimizer.sftStep({ microBatches: mine, lr });
      }
      if (result.skipped) return undefined;  // no rank had a record to train on
      return { metrics: { ...result.metrics }, tokens: result.tokens, records: result.records, seconds: (performance.now() - started) / 1000 };
    } catch (error) {
      if ((error as { code?: string }).code !== NON_FINITE) throw error;
      const which = batch.records.map((r) => r.id).join(', ');
      if (c.onNonFinite === 'stop') throw Object.assign(new Error(`${(error as Error).message} (records: ${which})`), { code: NON_FINITE });
      for (const r of batch.records) this.skipped.push({ id: r.id, reason: `step ${step + 1}: non-finite loss` });
      return undefined;
    }
  }

  async #validationRecords(): Promise<PreferencePair[]> {
    const c = this.config;
    return readPairs(c.data.validation!, { videoRoot: c.data.videoRoot }).toArray();
  }

  /**
   * Validation on data.validation, logged with TRL's evaluation names: eval_loss (the mean over pairs, as
   * transformers' evaluation loop computes it) and eval_rewards/..., eval_logps/..., eval_nll_loss (the mean of the
   * batches' means, as TRL's DPOTrainer logs its stored metrics), eval_runtime and eval_samples_per_second.
   */
  async #evaluate(folder: RunFolder, step: number, epoch: number, precomputed?: References): Promise<Record<string, number>> {
    const c = this.config;
    if (!c.data.validation || !this.#preference) return {};
    const started = performance.now();
    const records = await this.#validationRecords();
    const mode = this.#referenceMode();
    // Each rank scores every size-th batch; the batches' results are put back in order, so every figure is the
    // one process's (the same sums in the same order).
    const group = this.#group;
    const all = videoBatches(records, { batchSize: c.batchSize, shuffle: false });
    const scored: { index: number; metrics: PreferenceMetrics; pairs: number }[] = [];
    for (const batch of group ? roundRobin(all, group.rank, group.size) : all) {
      const inputs = await this.#pairInputs(batch, false, precomputed);
      if (inputs.items.length === 0) continue;
      const out = await preferenceForward(this.#session!.model, inputs.items, { loss: this.#loss(), referenceMode: mode, batchPairs: c.batchPairs }, this.#reference);
      scored.push({ index: batch.index, metrics: out.metrics, pairs: inputs.items.length });
    }
    const merged = group ? (await group.allGather(scored, 'gathering the validation results')).flat().sort((a, b) => a.index - b.index) : scored;
    const batches: PreferenceMetrics[] = merged.map((b) => b.metrics);
    let loss = 0, n = 0;
    for (const b of merged) {
      loss += b.metrics.loss * b.pairs;
      n += b.pairs;
    }
    if (n === 0) throw new Error(`${c.data.validation}: no pair to validate on (every one skipped)`);
    const mean = (key: keyof PreferenceMetrics) => batches.reduce((s, m) => s + m[key], 0) / batches.length;
    const seconds = (performance.now() - started) / 1000;
    const metrics: Record<string, number> = { eval_loss: loss / n };
    for (const key of ['rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'nll_loss'] as const) {
      metrics[`eval_${key}`] = mean(key);
    }
    Object.assign(metrics, { eval_runtime: seconds, eval_samples_per_second: n / seconds });
    if (!group || group.isMain) await folder.appendMetrics({ step, epoch, ...metrics });
    await this.#tensorboard?.scalars(step, metrics);
    this.emit('eval', { step, epoch, metrics });
    return metrics;
  }

  /** Preference accuracy and loss on the validation file (TRL's eval_* names), with the model as it is now. */
  async evaluate(step: number): Promise<Record<string, number>> {
    if (!this.#session) throw new Error('Trainer.evaluate: runs during fit() (the models are loaded there)');
    return this.#evaluate(await RunFolder.open(this.config.output), step, -1);
  }
}

/** The trajectory fields that only say how long a run is. */
const LENGTH_FIELDS = new Set(['maxSteps', 'epochs', 'steps']);

/** The fields whose values differ between two trajectories. */
function changedFields(before: Record<string, unknown> | undefined, after: Record<string, unknown>): string[] {
  const keys = [...new Set([...Object.keys(before ?? {}), ...Object.keys(after)])];
  return keys.filter((k) => JSON.stringify(before?.[k]) !== JSON.stringify(after[k]));
}

/** "lr 0.001 -> 0.002, seed 0 -> 1". */
function describeChanges(changed: string[], before: Record<string, unknown> | undefined, after: Record<string, unknown>): string {
  const show = (v: unknown) => {
    const text = JSON.stringify(v) ?? 'none';
    return text.length > 60 ? `${text.slice(0, 57)}...` : text;
  };
  return changed.length ? changed.map((k) => `${k} ${show(before?.[k])} -> ${show(after[k])}`).join(', ') : 'its identity differs';
}
