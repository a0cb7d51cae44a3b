#!/usr/bin/env node
// The `tpo` command. Each subcommand lives in its own module; this file only dispatches.
import { packageVersion } from '../version.js';
import { BENCH_DPO_USAGE, runBenchDpo } from './bench-dpo.js';
import { BENCH_PYTORCH_USAGE, runBenchPytorch } from './bench-pytorch.js';
import { BENCHMARKS, type BenchRow, formatBench } from './bench.js';
import { doctor, formatDoctor } from '../doctor.js';
import { parseFlags, UsageError } from './flags.js';
import { EVAL_USAGE, runEval } from './eval.js';
import { runSynth, SYNTH_USAGE } from './synth.js';
import { runTrain, TRAIN_USAGE } from './train.js';
import { GENERATE_USAGE, runGenerate } from './generate.js';
import { DEMO_USAGE, runDemoCommand } from './demo.js';
import { CONVERT_USAGE, runConvert } from './convert.js';
import { PLAN_USAGE, runPlan } from './plan.js';
import { distEnv } from '../dist/config.js';
import { launchLocal, takeNproc } from '../dist/launch.js';

const USAGE = `usage: tpo <command> [options]

commands:
${DEMO_USAGE}
  doctor [--json] [--bench-seconds S]   what tpo runs on (addon, libtorch, CUDA, devices, threads, FFmpeg), a matmul figure
  bench [NAME ...] [--json]             benchmarks, each as a ratio against a baseline run beside it
                                        (names: ${Object.keys(BENCHMARKS).join(', ')}; default: all)
${BENCH_DPO_USAGE}
${BENCH_PYTORCH_USAGE}
${SYNTH_USAGE}
${TRAIN_USAGE}
${PLAN_USAGE}
${GENERATE_USAGE}
${EVAL_USAGE}
${CONVERT_USAGE}
  help                                  this text

options:
  --nproc N                             (train, generate, eval) run N ranks on this machine, data-parallel over
                                        c10d (Gloo); any launcher that sets torchrun's variables works the same
  --version                             print tpo's version`;

/** The commands that run as several ranks. */
const DISTRIBUTED = new Set(['train', 'generate', 'eval']);

/** `--nproc N`: N ranks of the command, or undefined to run it here (one rank, or already a rank). */
async function launch(command: string, argv: string[]): Promise<{ code: number } | { argv: string[] }> {
  const { nproc, rest } = takeNproc(argv);
  if (nproc === undefined) return { argv };
  if (distEnv()) throw new UsageError(`tpo ${command}: --nproc inside a run that torchrun's variables already describe (WORLD_SIZE is set)`);
  if (nproc === 1) return { argv: rest };
  return { code: await launchLocal({ nproc, argv: [command, ...rest] }) };
}

async function runDoctor(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { json: 'boolean', 'bench-seconds': 'number' });
  const benchSeconds = values['bench-seconds'] ?? 1;
  if (!(benchSeconds >= 0 && benchSeconds <= 600)) throw new UsageError('--bench-seconds must be a number in [0, 600]');
  const report = await doctor({ benchSeconds });
  console.log(values.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
  return report.ok ? 0 : 1;
}

async function runBench(argv: string[]): Promise<number> {
  if (argv[0] === 'dpo' && argv.length > 1) return runBenchDpo(argv.slice(1));
  if (argv[0] === 'pytorch') return runBenchPytorch(argv.slice(1));
  const { values, positionals } = parseFlags(argv, { json: 'boolean' }, { positionals: true });
  const names = positionals.length ? positionals : Object.keys(BENCHMARKS);
  for (const name of names) if (!BENCHMARKS[name]) throw new UsageError(`unknown benchmark '${name}'`);
  const rows: BenchRow[] = [];
  for (const name of names) rows.push(...(await BENCHMARKS[name]!()));
  console.log(values.json ? JSON.stringify(rows, null, 2) : formatBench(rows));
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  let rest = args;
  if (command && DISTRIBUTED.has(command)) {
    const launched = await launch(command, args);
    if ('code' in launched) return launched.code;
    rest = launched.argv;
  }
  switch (command) {
    case 'doctor':
      return runDoctor(rest);
    case 'bench':
      return runBench(rest);
    case 'synth':
      return runSynth(rest);
    case 'train':
      return runTrain(rest);
    case 'plan':
      return runPlan(rest);
    case 'generate':
      return runGenerate(rest);
    case 'demo':
      return runDemoCommand(rest);
    case 'eval':
      return runEval(rest);
    case 'convert':
      return runConvert(rest);
    case '--version':
      console.log(packageVersion());
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError || (error as { usage?: boolean }).usage || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`tpo: ${(error as Error).message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else {
      console.error(error instanceof Error ? error.message : String(error));
      process.exitCode = 1;
    }
  },
);
