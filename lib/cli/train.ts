// `tpo train --config run.json [--resume] [--force] [--set field=value ...]`: a training run from a config file.
import type { TrainConfig } from '../train/config.js';
import { Trainer } from '../train/trainer.js';
import { parseFlags, requireConfig } from './flags.js';
import { readConfigFile } from './overrides.js';
import { formatDuration } from './progress.js';

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
  const started = performance.now();
  let first: number | undefined;
  trainer.on('notice', (message) => process.stderr.write(`tpo train: ${message}\n`));
  trainer.on('step', ({ step, total, metrics }) => {
    const elapsed = (performance.now() - started) / 1000;
    first ??= step - 1;  // a resumed run starts past 0
    const eta = total && step > first ? (elapsed / (step - first)) * (total - step) : undefined;
    const acc = metrics['rewards/accuracies'];
    process.stderr.write(`\rstep ${step}/${total}  loss ${metrics.loss?.toFixed(4)}${acc === undefined ? '' : `  acc ${acc.toFixed(2)}`}` +
      `  ${formatDuration(elapsed)}${eta === undefined ? '' : `  ETA ${formatDuration(eta)}`}   `);
  });
  trainer.on('checkpoint', ({ dir }) => process.stderr.write(`\ncheckpoint ${dir}\n`));
  const result = await trainer.fit({ signal: abort.signal, resume: values.resume });
  process.stderr.write(`\n${result.stopped === 'done' ? `done: ${result.steps} steps, final weights in ${result.final}` : `stopped at step ${result.steps}`}\n`);
  if (trainer.skipped.length) process.stderr.write(`skipped ${trainer.skipped.length} record(s): ${trainer.skipped.slice(0, 5).map((s) => `${s.id} (${s.reason})`).join(', ')}\n`);
  return 0;
}
