// `tpo demo`: the whole pipeline on the synthetic world (lib/demo/demo.ts), a progress bar per stage, and the
// base-vs-TPO table at the end.
import { type DemoEvent, DemoOptions, runDemo } from '../demo/demo.js';
import { formatComparisonTable } from '../report/report.js';
import { parseFlagConfig, parseFlags } from './flags.js';
import { formatDuration, ProgressBar } from './progress.js';

export const DEMO_USAGE = `  demo [--out DIR] [--seed S] [--train-base] [--pairs N] [--judge synthetic|graded]
                                        the TPO pipeline on the synthetic world: data, SFT base, TPO pairs,
                                        TPO training, base vs TPO on the held-out benchmark, report.html
                                        (default out: tpo-demo; a rerun resumes)`;

export async function runDemoCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    out: 'string', seed: 'number', videos: 'number', base: 'string', 'train-base': 'boolean', pairs: 'number',
    epochs: 'number', lr: 'number', beta: 'number', alpha: 'number', judge: 'string',
  });
  const raw = {
    out: values.out, seed: values.seed, videos: values.videos, base: values.base, trainBase: values['train-base'],
    pairs: values.pairs, epochs: values.epochs, lr: values.lr, beta: values.beta, sftWeight: values.alpha, judge: values.judge,
  };
  const options = parseFlagConfig(DemoOptions, raw, 'tpo demo', { trainBase: '--train-base', sftWeight: '--alpha' });
  let bar: ProgressBar | undefined;
  const onEvent = (e: DemoEvent) => {
    if (e.type === 'stage') process.stderr.write(`== ${e.name}: ${e.detail}\n`);
    else if (e.type === 'progress') {
      bar ??= new ProgressBar(e.total, { label: `   ${e.stage}` });
      bar.update(e.done, e.detail);
    } else {
      bar?.finish();
      bar = undefined;
      process.stderr.write(`   ${e.skipped ? 'done by an earlier run' : `done in ${formatDuration(e.seconds)}`}\n`);
    }
  };
  const result = await runDemo(options, onEvent);
  const total = result.stages.reduce((a, s) => a + s.seconds, 0);
  console.log(`\nTPO pairs: ${result.pairs.kept} kept of ${result.pairs.judged} judged; preferred answers right ${result.pairs.preferredCorrect}, ` +
    `dis-preferred right ${result.pairs.dispreferredCorrect}`);
  console.log(`\nHeld-out long test videos (${result.base.results.n} questions, multiple choice by option log-likelihood):\n`);
  console.log(formatComparisonTable([
    { name: 'base (SFT)', accuracy: result.base.results.accuracy, n: result.base.results.n, byCategory: result.base.results.byCategory },
    { name: 'TPO', accuracy: result.tpo.results.accuracy, n: result.tpo.results.n, byCategory: result.tpo.results.byCategory },
  ]));
  console.log(`\nstages: ${result.stages.map((s) => `${s.name} ${formatDuration(s.seconds)}`).join(', ')} (total ${formatDuration(total)})`);
  console.log(`report: ${result.report.html}`);
  return 0;
}
