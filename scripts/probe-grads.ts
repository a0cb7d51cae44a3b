// Where a training step's gradient goes (docs/results.md, issue 16): one SFT step of a model on a data file, once with
// only the vision tower trainable, once with only the projector (and image_newline), once with only the language
// model; each run's grad_norm is that part's gradient norm (before clipping) on the same batch, the same loss.
// The step's learning rate is 1e-12, and its weights are not kept.
//
//   node dist/scripts/probe-grads.js --model DIR --data FILE.jsonl [--batch 64] [--frames 1] [--out runs/probe-grads]
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { type StepEvent, Trainer } from '../lib/train/trainer.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' }, data: { type: 'string' }, batch: { type: 'string', default: '64' },
    frames: { type: 'string', default: '1' }, out: { type: 'string', default: 'runs/probe-grads' }, seed: { type: 'string', default: '1' },
  },
});
if (!values.model || !values.data) throw new Error('probe-grads: --model DIR and --data FILE are required');
const parts = { vision: { vision: true }, projector: { projector: true }, language: { language: true } } as const;
const norms: Record<string, number> = {};
for (const [name, train] of Object.entries(parts)) {
  const output = resolve(join(values.out, name));
  await rm(output, { recursive: true, force: true });
  const trainer = new Trainer({
    model: resolve(values.model), output, data: { train: resolve(values.data) }, objective: 'sft',
    train: { vision: false, projector: false, language: false, ...train }, lr: 1e-12, batchSize: Number(values.batch),
    frames: Number(values.frames), maxSteps: 1, seed: Number(values.seed), schedule: { type: 'constant' }, tensorboard: false,
    checkpoint: { every: 1000, keepLast: 1 },
  }, `probe-grads ${name}`);
  trainer.on('step', ({ metrics }: StepEvent) => { norms[name] = metrics.grad_norm!; norms[`${name} loss`] = metrics.loss!; });
  await trainer.fit();
  await rm(output, { recursive: true, force: true });
}
console.log(`${values.model}: grad norm vision ${norms.vision!.toExponential(3)}, projector ${norms.projector!.toExponential(3)}, ` +
  `language ${norms.language!.toExponential(3)} (loss ${norms['language loss']!.toFixed(4)})`);
