// `tpo generate --config gen.json [--set field=value ...]`: TPO's self-generated preference pairs (lib/tpo/generate.ts).
import { parseArgs } from 'node:util';

import { type GenerateConfig, generatePairs } from '../tpo/generate.js';
import { readConfigFile } from './overrides.js';
import { ProgressBar } from './progress.js';

export const GENERATE_USAGE = `  generate --config FILE [--set FIELD=VALUE ...]
                                        TPO preference pairs from the model's own answers to manipulated videos
                                        (resumable: a rerun continues where the last stopped)`;

export async function runGenerate(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, set: { type: 'string', multiple: true } } });
  if (!values.config) throw new Error('generate: --config FILE is required');
  const config = await readConfigFile(values.config, values.set);
  let bar: ProgressBar | undefined;
  const summary = await generatePairs(config as unknown as GenerateConfig, ({ done, videos, summary: s }) => {
    bar ??= new ProgressBar(videos, { label: 'generate', unit: 'videos' });
    const dropped = Object.values(s.dropped).reduce((a, b) => a + b, 0);
    bar.update(done, `${s.kept} pairs kept, ${dropped} dropped or skipped`);
  });
  bar?.finish();
  console.log(JSON.stringify(summary, null, 2));
  return 0;
}
