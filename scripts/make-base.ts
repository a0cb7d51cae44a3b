// Remakes the SFT base the package ships (assets/base-model) from its recorded seed, with the curriculum the demo
// uses for --train-base (lib/demo/base.ts: single frames, then clips of one or two events, then short videos):
//
//   node dist/scripts/make-base.js [--out runs/make-base] [--seed 1] [--curriculum base|seeing|binding] [--to assets/base-model]
//                                  [--through STAGE] [--after STAGE --from DIR]
//
// About 20 minutes on 2 cores for `base`; `binding` about 85 minutes through its pairs stage, and its stages can be gated as
// they finish (sft-<stage>/final: scripts/measure-base.ts, scripts/measure-binding.ts); rerun with the same --out to
// go on after a stop. --through STAGE stops after that stage (a candidate to gate); --after STAGE --from DIR starts
// after that stage from DIR (a candidate kept from an earlier run), with the same worlds. The result is copied to
// --to (default the packaged base) with a record of how it was made; --to elsewhere makes a candidate base to
// measure (scripts/measure-base.ts) without replacing it.
import { cp, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { writeJsonFile } from '../lib/data/jsonl.js';
import { CURRICULA, trainBase } from '../lib/demo/base.js';
import { PACKAGED_BASE } from '../lib/demo/demo.js';
import { packageVersion } from '../lib/version.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'runs/make-base' }, seed: { type: 'string', default: '1' },
    curriculum: { type: 'string', default: 'base' }, to: { type: 'string', default: PACKAGED_BASE },
    through: { type: 'string' }, after: { type: 'string' }, from: { type: 'string' },
  },
});
const curriculum = CURRICULA[values.curriculum];
if (!curriculum) throw new Error(`make-base: --curriculum must be one of ${Object.keys(CURRICULA).join(', ')}, not '${values.curriculum}'`);
if (!values.after !== !values.from) throw new Error('make-base: --after STAGE and --from DIR go together');
const out = resolve(values.out);
const to = resolve(values.to);
const seed = Number(values.seed);
const final = await trainBase(out, seed, ({ stage, step, total, loss }) =>
  process.stderr.write(`\r${stage}: step ${step}/${total}  loss ${loss?.toFixed(4)}   `), curriculum, {
  ...(values.through ? { through: values.through } : {}),
  ...(values.after ? { after: { stage: values.after, model: resolve(values.from!) } } : {}),
});
// a copy beside --to, then one rename: a stop never leaves half a model where the old one was
const partial = `${to}.partial`;
await rm(partial, { recursive: true, force: true });
await cp(final, partial, { recursive: true });
const flags = [`--seed ${seed}`, values.curriculum === 'base' ? '' : `--curriculum ${values.curriculum}`,
  values.through ? `--through ${values.through}` : '', values.after ? `--after ${values.after} --from ${values.from}` : '',
  to === resolve(PACKAGED_BASE) ? '' : `--to ${values.to}`].filter(Boolean).join(' ');
await writeJsonFile(join(partial, 'made-by.json'), { command: `node dist/scripts/make-base.js ${flags}`, tpo: packageVersion(), seed, curriculum });
await rm(to, { recursive: true, force: true });
await rename(partial, to);
process.stderr.write(`\nwrote ${to}\n`);
