// `tpo generate --config gen.json [--set field=value ...]`: TPO's self-generated preference pairs (lib/tpo/generate.ts).
import { isSecondaryRank } from '../dist/config.js';
import { type GenerateConfig, generatePairs } from '../tpo/generate.js';
import { parseFlags, requireConfig } from './flags.js';
import { readConfigFile } from './overrides.js';
import { ProgressBar } from './progress.js';

export const GENERATE_USAGE = `  generate --config FILE [--set FIELD=VALUE ...]
                                        TPO preference pairs from the model's own answers to manipulated videos
                                        (resumable: a rerun continues where the last stopped)`;

export async function runGenerate(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { config: 'string', set: 'strings' });
  const file = requireConfig('tpo generate', values.config);
  const config = await readConfigFile(file, values.set);
  let bar: ProgressBar | undefined;
  const secondary = isSecondaryRank();  // rank 0 of several reports the run
  const summary = await generatePairs(config as unknown as GenerateConfig, ({ done, videos, summary: s }) => {
    if (secondary) return;
    bar ??= new ProgressBar(videos, { label: 'generate', unit: 'videos' });
    const dropped = Object.values(s.dropped).reduce((a, b) => a + b, 0);
    bar.update(done, `${s.kept} pairs kept, ${dropped} dropped or skipped`);
  });
  bar?.finish();
  if (secondary) return summary.kept > 0 ? 0 : 1;
  console.log(JSON.stringify(summary, null, 2));
  if (summary.kept > 0) return 0;
  // A run that kept nothing made nothing to train on: say why, and fail.
  const reasons = Object.entries(summary.dropped).map(([reason, n]) => `${n} ${reason}`).join(', ');
  process.stderr.write(`tpo generate: no pair was kept (${reasons || 'no question was asked'}); see ${String(config.out)}.dropped.jsonl\n`);
  return 1;
}
