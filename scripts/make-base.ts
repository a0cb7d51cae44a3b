// Remakes the SFT base the package ships (assets/base-model) from its recorded seed, with the demo's own stages:
//
//   node dist/scripts/make-base.js [--out runs/make-base] [--steps 2000] [--seed 1]
//
// A synthetic world (400 videos, seed 1), a tiny LLaVA-Video model with fresh weights (seed 1), then SFT on the
// open-form questions of the short training videos (lib/demo/demo.ts baseTrainConfig: everything trained, AdamW,
// lr 1e-3, cosine, batch 16, 16 frames). The result is copied to assets/base-model with a record of how it was made.
import { existsSync } from 'node:fs';
import { cp, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { writeJsonFile, writeJsonl } from '../lib/data/jsonl.js';
import { baseTrainConfig, initModel, PACKAGED_BASE } from '../lib/demo/demo.js';
import { writeSynthDataset } from '../lib/synthetic/dataset.js';
import { Trainer } from '../lib/train/trainer.js';
import { packageVersion } from '../lib/version.js';

const { values } = parseArgs({
  options: { out: { type: 'string', default: 'runs/make-base' }, steps: { type: 'string', default: '2000' }, seed: { type: 'string', default: '1' } },
});
const out = resolve(values.out);
const seed = Number(values.seed);
const steps = Number(values.steps);
const world = join(out, 'world');

await writeSynthDataset({ out: world, videos: 400, seed, world: { length: 'mixed' } });
const records = (await readFile(join(world, 'train-sft.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
await writeJsonl(join(world, 'train-base-sft.jsonl'), records.filter((r) => r.length === 'short' && r.form === 'open'));
const init = join(out, 'init');
if (!existsSync(join(init, 'model.safetensors'))) await initModel(join(world, 'model'), init, seed);
const trainer = new Trainer(baseTrainConfig(world, init, join(out, 'sft'), steps, seed), 'make-base');
trainer.on('step', ({ step, total, metrics }) => process.stderr.write(`\rstep ${step}/${total} loss ${metrics.loss?.toFixed(4)}   `));
const { final } = await trainer.fit({ resume: true });
await rm(PACKAGED_BASE, { recursive: true, force: true });
await cp(final!, PACKAGED_BASE, { recursive: true });
await writeJsonFile(join(PACKAGED_BASE, 'made-by.json'), {
  command: `node dist/scripts/make-base.js --seed ${seed} --steps ${steps}`, tpo: packageVersion(), seed, steps,
  world: { videos: 400, seed, length: 'mixed' }, data: 'open-form questions of the short training videos',
});
process.stderr.write(`\nwrote ${PACKAGED_BASE}\n`);
