// `tpo train --config run.json [--resume] [--set field=value ...]`: a training run from a config file.
import { parseArgs } from 'node:util';

import type { TrainConfig } from '../train/config.js';
import { readConfigFile } from './overrides.js';
import { Trainer } from '../train/trainer.js';

export const TRAIN_USAGE = `  train --config FILE [--resume] [--set FIELD=VALUE ...]
                                        train (tpo, dpo or sft) as the config says; --set overrides a field
                                        (dotted path, JSON value: --set lr=1e-5 --set lora.r=16)`;

export async function runTrain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, resume: { type: 'boolean', default: false }, set: { type: 'string', multiple: true } },
  });
  if (!values.config) throw new Error('train: --config FILE is required');
  const config = await readConfigFile(values.config, values.set);
  const trainer = new Trainer(config as unknown as TrainConfig, values.config);
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());  // finish the step, save a checkpoint, stop
  const started = performance.now();
  let first: number | undefined;
  trainer.on('step', ({ step, total, metrics }) => {
    const elapsed = (performance.now() - started) / 1000;
    first ??= step - 1;  // a resumed run starts past 0
    const eta = total && step > first ? (elapsed / (step - first)) * (total - step) : undefined;
    const acc = metrics['rewards/accuracies'];
    process.stderr.write(`\rstep ${step}/${total}  loss ${metrics.loss?.toFixed(4)}${acc === undefined ? '' : `  acc ${acc.toFixed(2)}`}` +
      `  ${elapsed.toFixed(0)} s${eta === undefined ? '' : `  ETA ${eta.toFixed(0)} s`}   `);
  });
  trainer.on('checkpoint', ({ dir }) => process.stderr.write(`\ncheckpoint ${dir}\n`));
  const result = await trainer.fit({ signal: abort.signal, resume: values.resume });
  process.stderr.write(`\n${result.stopped === 'done' ? `done: ${result.steps} steps, final weights in ${result.final}` : `stopped at step ${result.steps}`}\n`);
  if (trainer.skipped.length) process.stderr.write(`skipped ${trainer.skipped.length} record(s): ${trainer.skipped.slice(0, 5).map((s) => `${s.id} (${s.reason})`).join(', ')}\n`);
  return 0;
}
