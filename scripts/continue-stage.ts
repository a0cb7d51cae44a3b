// One curriculum stage continued from a model (docs/results.md, issue 16 "continued 6"): a world of short videos
// (or --data, an SFT file), its open questions, SFT with lib/demo/base.ts's stageTrainConfig (everything trained,
// AdamW to --lr, cosine), checkpoints kept so that each can be gated (scripts/measure-base.ts). Resumable.
//
//   node dist/scripts/continue-stage.js --from MODEL --out runs/p3 [--world-seed 5] [--events 2,2] [--videos 3000]
//        [--event-frames 8,16] [--gaps 0,4] [--skip count,count-color] [--data FILE] [--frames 16] [--batch 16]
//        [--steps 1500] [--lr 1e-3] [--vision-lr X] [--projector-lr X] [--every 250] [--keep 6] [--world-only]
//        [--tie-embeddings] [--video-after-question]
//
// --tie-embeddings: continue from a copy of --from with tied input and output embeddings (continued 8): the one
// matrix is --from's lm_head, so the colour and shape words keep the read-out directions the model learnt, and a
// question's "red" enters the residual stream as the very vector the model answers "red" with.
// --video-after-question: train on the same records with the video after the question ("Which shape is red?\n<image>",
// continued 9): in a causal language model every visual token then sees the question, so a token can carry its own
// shape forward only when it is the colour asked, instead of the answer having to find it among all of them.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { IMAGE_PLACEHOLDER } from '../lib/data/encode.js';
import { filterJsonl, writeJsonl } from '../lib/data/jsonl.js';
import { resolveVideoPath } from '../lib/data/videos.js';
import { stageTrainConfig } from '../lib/demo/base.js';
import { copyModelFiles } from '../lib/model/files.js';
import { readSafetensors, writeSafetensors } from '../lib/model/safetensors.js';
import { prepareOutputDir } from '../lib/paths.js';
import { writeSynthDataset } from '../lib/synthetic/dataset.js';
import { type StepEvent, Trainer } from '../lib/train/trainer.js';

const { values: v } = parseArgs({
  options: {
    from: { type: 'string' }, out: { type: 'string' }, data: { type: 'string' }, 'world-seed': { type: 'string', default: '4' },
    events: { type: 'string', default: '3,5' }, 'event-frames': { type: 'string', default: '8,16' }, gaps: { type: 'string', default: '0,4' },
    videos: { type: 'string', default: '3000' }, skip: { type: 'string', default: '' }, frames: { type: 'string', default: '16' },
    batch: { type: 'string', default: '16' }, steps: { type: 'string', default: '1500' }, lr: { type: 'string', default: '1e-3' },
    'vision-lr': { type: 'string' }, 'projector-lr': { type: 'string' }, every: { type: 'string', default: '250' },
    keep: { type: 'string', default: '6' },
    /** Write the world and stop (a held-out world for measure-binding). */
    'world-only': { type: 'boolean', default: false },
    'tie-embeddings': { type: 'boolean', default: false },
    'video-after-question': { type: 'boolean', default: false },
  },
});
if (!v.out || (!v.from && !v['world-only'])) throw new Error('continue-stage: --from (a model folder) and --out are required');
const range = (flag: string, text: string): [number, number] => {
  const [a, b] = text.split(',').map(Number);
  if (!Number.isInteger(a) || !Number.isInteger(b) || a! > b!) throw new Error(`continue-stage: --${flag} must be 'min,max' integers, not '${text}'`);
  return [a!, b!];
};
const out = resolve(v.out);
const spec = { events: range('events', v.events), eventFrames: range('event-frames', v['event-frames']), gapFrames: range('gaps', v.gaps) };
const worldData = v.data ? resolve(v.data) : join(out, 'world', 'train-open.jsonl');
const data = v['video-after-question'] ? join(out, 'train-open.video-after-question.jsonl') : worldData;
if (!v.data) {
  const world = join(out, 'world');
  await writeSynthDataset({ out: world, videos: Number(v.videos), seed: Number(v['world-seed']), split: [1, 0, 0], world: { length: 'short', short: spec } });
  const skip = v.skip ? v.skip.split(',') : [];
  if (!existsSync(worldData)) await filterJsonl(join(world, 'train-sft.jsonl'), worldData, (r) => r.form === 'open' && !skip.includes(r.type as string));
}
if (v['video-after-question'] && !existsSync(data)) {
  await mkdir(out, { recursive: true });
  await writeJsonl(data, (await readFile(worldData, 'utf8')).split('\n').filter(Boolean)
    .map((l, i) => videoAfterQuestion(JSON.parse(l) as Record<string, unknown>, i)));
}
if (v['world-only']) {
  process.stdout.write(`world: ${join(out, 'world')}\n`);
  process.exit(0);
}
/** A record's prompt with its video moved after the question (see --video-after-question). */
function videoAfterQuestion(record: Record<string, unknown>, line: number): Record<string, unknown> {
  const prompt = record.prompt;
  const lead = `${IMAGE_PLACEHOLDER}\n`;
  if (typeof prompt !== 'string' || !prompt.startsWith(lead)) {
    throw new Error(`continue-stage: ${worldData} record ${line + 1}: prompt does not start with ${JSON.stringify(lead)}`);
  }
  // the copy lives under --out, so its video is made absolute (a relative one is read beside the file that names it)
  const video = resolveVideoPath(String(record.video), worldData);
  return { ...record, video, prompt: `${prompt.slice(lead.length)}\n${IMAGE_PLACEHOLDER}` };
}
/** A copy of `from` whose input embeddings are its lm_head and whose config ties them (see --tie-embeddings). */
async function tiedCopy(from: string, to: string): Promise<string> {
  if (existsSync(join(to, 'model.safetensors'))) return to;
  const config = JSON.parse(await readFile(join(from, 'config.json'), 'utf8')) as Record<string, unknown>;
  const { tensors, metadata } = await readSafetensors(join(from, 'model.safetensors'));
  const head = tensors['lm_head.weight'];
  if (config.tie_word_embeddings || !head) throw new Error(`continue-stage: ${from} has no separate lm_head to tie (tie_word_embeddings is already set, or lm_head.weight is missing)`);
  tensors['model.embed_tokens.weight'] = head;
  delete tensors['lm_head.weight'];
  const partial = `${to}.partial`;
  prepareOutputDir(partial, 'a model folder');
  await writeSafetensors(join(partial, 'model.safetensors'), tensors, { metadata });
  await writeFile(join(partial, 'config.json'), `${JSON.stringify({ ...config, tie_word_embeddings: true }, null, 2)}\n`);
  await copyModelFiles(from, partial);
  await rename(partial, to);
  return to;
}
const from = v['tie-embeddings'] ? await tiedCopy(resolve(v.from!), join(out, 'tied')) : resolve(v.from!);
const stage = { name: 'continued', videos: Number(v.videos), spec, frames: Number(v.frames), batchSize: Number(v.batch), steps: Number(v.steps), lr: Number(v.lr) };
const config = {
  ...stageTrainConfig(stage, from, data, join(out, 'sft'), 4),
  checkpoint: { every: Number(v.every), keepLast: Number(v.keep) },
  ...(v['vision-lr'] ? { visionLr: Number(v['vision-lr']) } : {}),
  ...(v['projector-lr'] ? { projectorLr: Number(v['projector-lr']) } : {}),
};
const started = Date.now();
const trainer = new Trainer(config, 'continue-stage');
trainer.on('step', ({ step, total, metrics }: StepEvent) => {
  if (step % 50 === 0) process.stdout.write(`step ${step}/${total}  loss ${metrics.loss?.toFixed(4)}  ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
});
await trainer.fit({ resume: true });
process.stdout.write(`done in ${((Date.now() - started) / 1000).toFixed(0)} s: ${join(out, 'sft', 'final')}\n`);
