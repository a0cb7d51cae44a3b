// `tpo train --config run.json [--resume] [--force] [--set field=value ...]`: a training run from a config file.
import { isSecondaryRank } from '../dist/config.js';
import type { TrainConfig } from '../train/config.js';
import { Trainer } from '../train/trainer.js';
import { parseFlags, requireConfig } from './flags.js';
import { readConfigFile } from './overrides.js';
import { ProgressBar } from './progress.js';

export const TRAIN_USAGE = `  train --config FILE [--resume] [--force] [--set FIELD=VALUE ...]
                                        train (tpo, dpo or sft) as the config says; --set overrides a field
                                        (dotted path, JSON value: --set lr=1e-5 --set lora.r=16); --resume
                                        continues the run in the output folder; --force (overwrite: true)
                                        deletes another run found there and starts this one`;

export async function runTrain(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { config: 'string', resume: 'boolean', force: 'boolean', set: 'strings' });
  const file = requireConfig('tpo train', values.config);
  const config = await readConfigFile(file, values.set);
  if (values.force) config.overwrite = true;
  const trainer = new Trainer(config as unknown as TrainConfig, file);
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());  // finish the step, save a checkpoint, stop
  trainer.on('notice', (message) => process.stderr.write(`tpo train: ${message}\n`));
  // Rank 0 of a multi-process run reports the run; the others only their own notices and errors.
  const secondary = isSecondaryRank();
  // The shared progress bar: steps done of the run's total, rate and ETA (from this process's steps only, so a
  // resumed run's estimate is its own), the latest loss and reward accuracy.
  let bar: ProgressBar | undefined;
  trainer.on('step', ({ step, total, metrics }) => {
    if (secondary) return;
    bar ??= new ProgressBar(total ?? step, { label: 'train', unit: 'steps', initial: step - 1 });
    const acc = metrics['rewards/accuracies'];
    bar.update(step, `loss ${metrics.loss?.toFixed(4)}${acc === undefined ? '' : `  acc ${acc.toFixed(2)}`}`);
  });
  trainer.on('checkpoint', ({ dir }) => {
    if (process.stderr.isTTY) process.stderr.write('\n');
    process.stderr.write(`checkpoint ${dir}\n`);
  });
  const result = await trainer.fit({ signal: abort.signal, resume: values.resume }).catch((error: Error & { code?: string }) => {
    // A rank that died took the run with it: the run folder's last checkpoint is where it goes on from.
    if (error.code === 'ERR_TPO_DIST') error.message += `; --resume continues the run from its last checkpoint in ${String(config.output)}`;
    throw error;
  });
  bar?.finish();
  if (secondary) return 0;
  process.stderr.write(`${result.stopped === 'done' ? `done: ${result.steps} steps, final weights in ${result.final}` : `stopped at step ${result.steps}`}\n`);
  if (trainer.skipped.length) process.stderr.write(`skipped ${trainer.skipped.length} record(s): ${trainer.skipped.slice(0, 5).map((s) => `${s.id} (${s.reason})`).join(', ')}\n`);
  return 0;
}
