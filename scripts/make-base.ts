// Remakes the SFT base the package ships (assets/base-model) from its recorded seed, with the curriculum the demo
// uses for --train-base (lib/demo/base.ts: single frames, then clips of one or two events, then short videos):
//
//   node dist/scripts/make-base.js [--out runs/make-base] [--seed 1]
//
// About 20 minutes on 2 cores. The result is copied to assets/base-model with a record of how it was made.
import { cp, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { writeJsonFile } from '../lib/data/jsonl.js';
import { BASE_CURRICULUM, trainBase } from '../lib/demo/base.js';
import { PACKAGED_BASE } from '../lib/demo/demo.js';
import { packageVersion } from '../lib/version.js';

const { values } = parseArgs({ options: { out: { type: 'string', default: 'runs/make-base' }, seed: { type: 'string', default: '1' } } });
const out = resolve(values.out);
const seed = Number(values.seed);
const final = await trainBase(out, seed, ({ stage, step, total, loss }) =>
  process.stderr.write(`\r${stage}: step ${step}/${total}  loss ${loss?.toFixed(4)}   `));
await rm(PACKAGED_BASE, { recursive: true, force: true });
await cp(final, PACKAGED_BASE, { recursive: true });
await writeJsonFile(join(PACKAGED_BASE, 'made-by.json'), {
  command: `node dist/scripts/make-base.js --seed ${seed}`, tpo: packageVersion(), seed, curriculum: BASE_CURRICULUM,
});
process.stderr.write(`\nwrote ${PACKAGED_BASE}\n`);
