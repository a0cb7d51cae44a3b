// `tpo convert --from FORMAT IN OUT`: a dataset in TRL's, LLaMA-Factory's, LLaVA's, LLaVA-Hound's or TimeWarp's
// layout (JSONL, JSON or Parquet) as tpo's JSONL (lib/data/convert.ts).
import { parseArgs } from 'node:util';

import { CONVERT_FORMATS, convertDataset } from '../data/convert.js';

export const CONVERT_USAGE = `  convert --from FORMAT IN OUT [--video-root DIR] [--limit N]
                                        a dataset (JSONL, JSON or Parquet) as tpo's JSONL: pairs from
                                        ${CONVERT_FORMATS.filter((f) => f !== 'llava').join(', ')}; SFT records from llava
                                        (--video-root: where the input's relative videos start)`;

export async function runConvert(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { from: { type: 'string' }, 'video-root': { type: 'string' }, limit: { type: 'string' } },
  });
  if (!values.from) throw Object.assign(new Error(`convert: --from FORMAT is required (${CONVERT_FORMATS.join(', ')})`), { usage: true });
  if (positionals.length !== 2) throw Object.assign(new Error('convert: give the input file and the output file'), { usage: true });
  const [input, output] = positionals as [string, string];
  const summary = await convertDataset({
    from: values.from as (typeof CONVERT_FORMATS)[number], input, output,
    ...(values['video-root'] ? { videoRoot: values['video-root'] } : {}),
    ...(values.limit !== undefined ? { limit: Number(values.limit) } : {}),
  });
  console.log(`${output}: ${summary.records} ${summary.kind === 'pair' ? 'preference pairs' : 'SFT records'} from ${summary.rows} rows of ${input}`);
  return 0;
}
