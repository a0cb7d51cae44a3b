// One curriculum stage continued from a model (docs/results.md, issue 16 "continued 6"): a world of short videos
// (or --data, an SFT file), its open questions, SFT with lib/demo/base.ts's stageTrainConfig (everything trained,
// AdamW to --lr, cosine), checkpoints kept so that each can be gated (scripts/measure-base.ts). Resumable.
//
//   node dist/scripts/continue-stage.js --from MODEL --out runs/p3 [--world-seed 5] [--events 2,2] [--videos 3000]
//        [--event-frames 8,16] [--gaps 0,4] [--skip count,count-color] [--data FILE] [--frames 16] [--batch 16]
//        [--steps 1500] [--lr 1e-3] [--vision-lr X] [--projector-lr X] [--every 250] [--keep 6] [--world-only]
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { filterJsonl } from '../lib/data/jsonl.js';
import { stageTrainConfig } from '../lib/demo/base.js';
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
const data = v.data ? resolve(v.data) : join(out, 'world', 'train-open.jsonl');
if (!v.data) {
  const world = join(out, 'world');
  await writeSynthDataset({ out: world, videos: Number(v.videos), seed: Number(v['world-seed']), split: [1, 0, 0], world: { length: 'short', short: spec } });
  const skip = v.skip ? v.skip.split(',') : [];
  if (!existsSync(data)) await filterJsonl(join(world, 'train-sft.jsonl'), data, (r) => r.form === 'open' && !skip.includes(r.type as string));
}
if (v['world-only']) {
  process.stdout.write(`world: ${join(out, 'world')}\n`);
  process.exit(0);
}
const stage = { name: 'continued', videos: Number(v.videos), spec, frames: Number(v.frames), batchSize: Number(v.batch), steps: Number(v.steps), lr: Number(v.lr) };
const config = {
  ...stageTrainConfig(stage, resolve(v.from!), data, join(out, 'sft'), 4),
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
