// A quick check of one curriculum stage before a long make-base run (docs/results.md, issue 16): fresh weights,
// one stage of lib/demo/base.ts's shape on a small world, asked only the given question types, its loss every 10 steps.
// Whether the loss leaves the chance level says whether the model can learn those types from that input at all.
//
//   node dist/scripts/probe-stage.js --out runs/probe-shape [--types shape] [--steps 300] [--frames 1] [--events 1]
//                                    [--lr 1e-3] [--videos 1000] [--batch 64] [--seed 1]
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { allTypesBut, trainBase } from '../lib/demo/base.js';
import { COMPREHENSIVE_TYPES, LOCALIZED_TYPES, type QuestionType } from '../lib/synthetic/questions.js';

const TYPES: readonly string[] = [...LOCALIZED_TYPES, ...COMPREHENSIVE_TYPES];
const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'runs/probe' }, types: { type: 'string', default: 'shape' },
    steps: { type: 'string', default: '300' }, frames: { type: 'string', default: '1' }, events: { type: 'string', default: '1' },
    lr: { type: 'string', default: '1e-3' }, videos: { type: 'string', default: '1000' }, batch: { type: 'string', default: '64' },
    seed: { type: 'string', default: '1' },
  },
});
const keep = values.types.split(',');
const unknown = keep.filter((t) => !TYPES.includes(t));
if (unknown.length) throw new Error(`probe-stage: --types has unknown question types: ${unknown.join(', ')} (known: ${TYPES.join(', ')})`);
const started = Date.now();
await trainBase(resolve(values.out), Number(values.seed), ({ step, total, loss }) => {
  if (step % 10 === 0) process.stdout.write(`step ${step}/${total}  loss ${loss?.toFixed(4)}  ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}, [{
  name: 'probe', videos: Number(values.videos), spec: { events: [1, Number(values.events)], eventFrames: [6, 10], gapFrames: [0, 0] },
  skipTypes: allTypesBut(...(keep as QuestionType[])), frames: Number(values.frames), batchSize: Number(values.batch),
  steps: Number(values.steps), lr: Number(values.lr),
}]);
