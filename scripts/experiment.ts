// The experiment behind docs/results.md: TPO against its baselines on the synthetic world, in the shape of the
// paper's tables, each arm with several seeds (mean ± sample standard deviation).
//
//   node dist/scripts/experiment.js [--out runs/experiment] [--seeds 0,1,2] [--size 400] [--sizes 100,200,400]
//                                   [--mixes 10:0,8:2,5:5,2:8,0:10] [--base DIR] [--only methods,mix,size]
//                                   [--world-seed 0] [--long-events 8,12] [--event-frames 6,12] [--split-videos 750,50,200]
//                                   [--eval-split test|val] [--judge synthetic|graded]
//                                   [--beta 0.1] [--alpha 1] [--lr 2e-4] [--epochs 2] [--pool-max N] [--max-new-tokens 12]
//                                   [--arms tpo,sft-preferred,dpo-no-manipulation]
//   node dist/scripts/experiment.js --aggregate [--out runs/experiment] [same recipe flags]   (results.md)
//
// The world (its seed, its long videos' events, the split sizes) and the pool of pairs live under --out; runs and
// evaluations are named by the recipe (beta, alpha, lr, epochs, judge), the size and the evaluation split, so several
// recipes share one world and pool (one --out per world: the world's flags must not change under one --out). Choose on --eval-split val; the test split is for the final tables.
//
// Seeds can run in parallel processes (--seeds 0 in one, --seeds 1 in another, TPO_NUM_THREADS=1 each): each
// writes results-<recipe>-<split>-n<size>-<seeds>.json; the pool of pairs is made by the first and reused (run one seed first, or wait).
//
// Arms (all start from the same SFT base, all trained with the same recipe, evaluated on the long test videos):
//   base                 the SFT base itself
//   sft-preferred        SFT on the TPO pairs' chosen answers (no preference signal)
//   dpo-no-manipulation  TPO's loss on pairs of two sampled answers on the same full video, judged
//   tpo                  TPO's loss on TPO's pairs (localized + comprehensive manipulations)
// then TPO at other localized:comprehensive mixes, and at other data sizes.
//
// The pool of TPO pairs is generated once (greedy answers: the same for every seed) and judged exactly; --judge graded
// re-judges the same answers (pairs-graded/). Each seed draws its subset
// and trains with its own seed. Every stage's output is kept under --out, so a rerun resumes.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { filterJsonl, writeJsonFile, writeJsonl } from '../lib/data/jsonl.js';
import { mulberry32, seededShuffle } from '../lib/data/videos.js';
import { PACKAGED_BASE } from '../lib/demo/demo.js';
import { evaluate, type EvalResults } from '../lib/eval/evaluate.js';
import { barChart } from '../lib/report/svg.js';
import { writeSynthDataset } from '../lib/synthetic/dataset.js';
import { generatePairs } from '../lib/tpo/generate.js';
import { judgeGraded, type Verdict } from '../lib/tpo/judge.js';
import type { TrainConfig } from '../lib/train/config.js';
import { Trainer } from '../lib/train/trainer.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'runs/experiment' }, base: { type: 'string', default: PACKAGED_BASE },
    seeds: { type: 'string', default: '0,1,2' },
    /** The world: its seed, and videos per split (train, validation, test; a split's first n videos stay the same
     * when it grows, so a larger validation split leaves train and test as they were). */
    'world-seed': { type: 'string', default: '0' }, 'split-videos': { type: 'string', default: '750,50,200' },
    /** Which split's long videos the arms are evaluated on. */
    'eval-split': { type: 'string', default: 'test' },
    /** The pairs' judge: synthetic (exact: chosen right, rejected wrong) or graded (chosen closer to the truth). */
    judge: { type: 'string', default: 'synthetic' },
    /** The SFT term's weight (TPO's alpha). */
    alpha: { type: 'string', default: '1' },
    /** Tokens a generated answer may take (12 truncates most order answers: docs/results.md). */
    'max-new-tokens': { type: 'string', default: '12' },
    /** The methods group's arms. */
    arms: { type: 'string', default: 'tpo,sft-preferred,dpo-no-manipulation' },
    /** Stop each kind's pool once the exact judge kept this many pairs (default: every long training question). */
    'pool-max': { type: 'string' },
    size: { type: 'string', default: '400' }, sizes: { type: 'string', default: '100,200,400' },
    mixes: { type: 'string', default: '10:0,8:2,5:5,2:8,0:10' }, only: { type: 'string', default: 'methods,mix,size' },
    /** The localized:comprehensive mix of the methods and size arms (TPO's best, 5:5, by default). */
    mix: { type: 'string', default: '5:5' },
    /** The mix of the data-size arm (default: --mix). */
    'size-mix': { type: 'string' },
    frames: { type: 'string', default: '16' }, epochs: { type: 'string', default: '2' },
    lr: { type: 'string', default: '2e-4' }, beta: { type: 'string', default: '0.1' },
    aggregate: { type: 'boolean', default: false },
    /** Events per long video (the world's default is 16-28; see docs/results.md for why the experiment uses fewer). */
    'long-events': { type: 'string', default: '8,12' },
    /** Frames per event in long videos. */
    'event-frames': { type: 'string', default: '6,12' },
  },
});
const out = resolve(values.out);
const base = resolve(values.base);
const seeds = values.seeds.split(',').map(Number);
const size = Number(values.size);
const sizes = values.sizes.split(',').map(Number);
const mixes = values.mixes.split(',').map((m) => m.split(':').map(Number) as [number, number]);
const mainMix = values.mix.split(':').map(Number) as [number, number];
const sizeMix = (values['size-mix'] ?? values.mix).split(':').map(Number) as [number, number];
const mixName = (m: [number, number]) => m.join('-');
const only = new Set(values.only.split(','));
const arms = new Set(values.arms.split(','));
const frames = Number(values.frames);
const world = join(out, 'world');
const worldSeed = Number(values['world-seed']);
const splitVideos = values['split-videos'].split(',').map(Number) as [number, number, number];
const evalSplit = values['eval-split'];
if (!['val', 'test'].includes(evalSplit)) throw new Error(`--eval-split must be val or test, not ${evalSplit}`);
const judge = values.judge;
if (!['synthetic', 'graded'].includes(judge)) throw new Error(`--judge must be synthetic or graded, not ${judge}`);
const alpha = Number(values.alpha);
/** What names a run: the recipe and the judge (the world and pool are --out's). */
const recipe = `b${values.beta}-a${values.alpha}-lr${values.lr}-e${values.epochs}${judge === 'synthetic' ? '' : `-${judge}`}`;
/** SFT on the preferred answers has no beta or alpha: its runs are named by the rest. */
const sftRecipe = `lr${values.lr}-e${values.epochs}${judge === 'synthetic' ? '' : `-${judge}`}`;
const pairsDir = join(out, judge === 'synthetic' ? 'pairs' : `pairs-${judge}`);

interface Pair { id: string; kind: string; prompt: string; chosen: string; rejected: string; video: string }

/** Arms the pool could not fill, reported under the tables. */
const infeasible = new Set<string>();
const log = (text: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${text}\n`);
const readLines = async <T>(file: string): Promise<T[]> =>
  (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as T);

/** A subset of the pool: `n` pairs at the mix, drawn with the seed. */
function subset(pool: Pair[], n: number, mix: [number, number], seed: number): Pair[] {
  const local = Math.round((n * mix[0]) / (mix[0] + mix[1]));
  const random = mulberry32(seed);
  const pick = (kind: string, k: number) => {
    const all = seededShuffle(pool.filter((p) => p.kind === kind), random);
    if (all.length < k) throw new Error(`the pool has ${all.length} ${kind} pairs; ${k} are needed (lower --size or use more --videos)`);
    return all.slice(0, k);
  };
  return [...pick('localized', local), ...pick('comprehensive', n - local)];
}

async function train(name: string, data: string, objective: 'tpo' | 'sft', seed: number): Promise<string> {
  const output = join(out, 'runs', objective === 'sft' ? sftRecipe : recipe, name);
  if (existsSync(join(output, 'final'))) return join(output, 'final');
  log(`train ${name}`);
  const config: TrainConfig = {
    model: base, output, data: { train: data }, objective,
    ...(objective === 'tpo' ? { loss: { type: 'sigmoid', beta: Number(values.beta), sftWeight: alpha }, reference: 'precomputed' as const } : {}),
    train: { language: true }, batchPairs: true, lr: Number(values.lr), batchSize: 8, frames, epochs: Number(values.epochs), seed,
    schedule: { type: 'cosine', warmupRatio: 0.1 }, checkpoint: { every: 1000, keepLast: 1 },
  };
  return (await new Trainer(config, name).fit({ resume: true })).final!;
}

async function evaluateModel(name: string, model: string): Promise<EvalResults> {
  const file = join(out, 'eval', evalSplit, name === 'base' ? 'base.json' : `${name.startsWith('sft-') ? sftRecipe : recipe}-${name}.json`);
  if (existsSync(file)) return JSON.parse(await readFile(file, 'utf8')) as EvalResults;
  log(`eval ${name} (${evalSplit})`);
  return evaluate({ model, benchmark: join(world, `${evalSplit}-long-benchmark.jsonl`), frames, method: 'loglik', out: file });
}

async function main(): Promise<void> {
  await mkdir(join(out, 'data'), { recursive: true });
  const longEvents = values['long-events'].split(',').map(Number) as [number, number];
  const eventFrames = values['event-frames'].split(',').map(Number) as [number, number];
  const total = splitVideos[0] + splitVideos[1] + splitVideos[2];
  log(`world: seed ${worldSeed}, ${splitVideos.join('/')} videos (train/val/test), long videos ${longEvents.join('-')} events of ${eventFrames.join('-')} frames`);
  await writeSynthDataset({
    out: world, videos: total, seed: worldSeed, split: splitVideos.map((n) => n / total) as [number, number, number],
    world: { length: 'mixed', long: { events: longEvents, eventFrames, gapFrames: [0, 3] } },
  });
  for (const split of ['train', 'val', 'test']) {
    const to = join(world, `${split}-long-benchmark.jsonl`);
    if (!existsSync(to)) await filterJsonl(join(world, `${split}-benchmark.jsonl`), to, (r) => r.length === 'long');
  }

  // The TPO pool: every long training question of each kind (or until --pool-max are kept), greedy answers, judged
  // exactly; another judge re-judges the same answers (a judge is a post-filter: the answers do not change).
  const pool: Pair[] = [];
  for (const [kind, mix] of [['localized', [1, 0]], ['comprehensive', [0, 1]]] as const) {
    const file = join(out, 'pairs', `tpo-${kind}.jsonl`);
    log(`TPO pairs (${kind})`);
    const s = await generatePairs({ model: base, questions: join(world, 'train-long-benchmark.jsonl'), out: file, manipulation: 'tpo',
      frames, mix: [...mix], maxNewTokens: Number(values['max-new-tokens']), ...(values['pool-max'] ? { targetPairs: Number(values['pool-max']) } : {}) });
    log(`  kept ${s.kept} of ${s.judged}; preferred right ${s.preferredCorrect}, dis-preferred right ${s.dispreferredCorrect}`);
    pool.push(...(judge === 'synthetic' ? await readLines<Pair>(file) : await rejudge(file, join(pairsDir, `tpo-${kind}.jsonl`))));
  }

  const results: { arm: string; group: string; seed: number; results: EvalResults['results'] }[] = [];
  const record = async (arm: string, group: string, seed: number, model: string) => {
    // Evaluations are named by the run (its recipe, size and seed), so arms that share a run share its evaluation.
    results.push({ arm, group, seed, results: (await evaluateModel(basename(dirname(model)), model)).results });
    await writeJsonFile(join(out, `results-${recipe}-${evalSplit}-n${size}-${seeds.join('-')}.json`), results);
    await writeJsonFile(join(out, `infeasible-${recipe}-${seeds.join('-')}.json`), [...infeasible]);
  };
  const baseResults = await evaluateModel('base', base);
  const pairsFile = async (name: string, pairs: unknown[]) => {
    // A sibling of pairs/: the records name their videos relative to their own folder.
    const file = join(out, judge === 'synthetic' ? 'data' : `data-${judge}`, `${name}.jsonl`);
    await mkdir(join(file, '..'), { recursive: true });
    if (!existsSync(file)) await writeJsonl(file, pairs);
    return file;
  };

  for (const seed of seeds) {
    results.push({ arm: 'base', group: 'methods', seed, results: baseResults.results });
    const main = subset(pool, size, mainMix, seed);
    const mainFile = `tpo-${size}-${mixName(mainMix)}-seed${seed}`;
    if (only.has('methods')) {
      if (arms.has('tpo')) await record('tpo', 'methods', seed, await train(`tpo-${size}-seed${seed}`, await pairsFile(mainFile, main), 'tpo', seed));
    }
    if (only.has('methods') && arms.has('sft-preferred')) {
      const sft = main.map((p) => ({ id: p.id, video: p.video, prompt: p.prompt, answer: p.chosen }));
      await record('sft-preferred', 'methods', seed, await train(`sft-preferred-${size}-seed${seed}`, await pairsFile(`sft-${size}-seed${seed}`, sft), 'sft', seed));
    }
    if (only.has('methods') && arms.has('dpo-no-manipulation')) {
      const noneFile = join(pairsDir, `none-${size}-seed${seed}.jsonl`);
      log(`no-manipulation pairs, seed ${seed}`);
      await generatePairs({ model: base, questions: join(world, 'train-long-benchmark.jsonl'), out: noneFile, manipulation: 'none',
        frames, mix: mainMix, targetPairs: size, maxNewTokens: Number(values['max-new-tokens']), temperature: 1, seed, judge: judge as 'synthetic' });
      await record('dpo-no-manipulation', 'methods', seed, await train(`dpo-none-${size}-seed${seed}`, noneFile, 'tpo', seed));
    }
    if (only.has('mix')) {
      for (const mix of mixes) {
        const same = mix[0] * mainMix[1] === mix[1] * mainMix[0];
        let data: string;
        try {
          data = same ? await pairsFile(mainFile, main) : await pairsFile(`mix${mixName(mix)}-${size}-seed${seed}`, subset(pool, size, mix, seed));
        } catch (error) {
          log(`mix ${mix.join(':')}: ${(error as Error).message}; skipped`);
          infeasible.add(`mix ${mix.join(':')} at ${size} pairs: ${(error as Error).message}`);
          continue;
        }
        await record(`mix ${mix.join(':')}`, 'mix', seed, await train(same ? `tpo-${size}-seed${seed}` : `tpo-mix${mixName(mix)}-${size}-seed${seed}`, data, 'tpo', seed));
      }
    }
    if (only.has('size')) {
      for (const n of sizes) {
        const same = n === size && sizeMix[0] * mainMix[1] === sizeMix[1] * mainMix[0];
        const data = same ? await pairsFile(mainFile, main) : await pairsFile(`tpo-${n}-${mixName(sizeMix)}-seed${seed}`, subset(pool, n, sizeMix, seed));
        await record(`${n} pairs (${sizeMix.join(':')})`, 'size', seed, await train(same ? `tpo-${size}-seed${seed}` : `tpo-n${n}-${mixName(sizeMix)}-seed${seed}`, data, 'tpo', seed));
      }
    }
  }
  await aggregate();
}

/** The exact pool's answers (kept and dropped) judged by --judge: the pairs it keeps, also written to `to`. */
async function rejudge(from: string, to: string): Promise<Pair[]> {
  type Judged = Pair & { type: string | null; reference: string; preferred?: string; dispreferred?: string; judge?: Verdict };
  const records = [...(await readLines<Judged>(from)), ...(await readLines<Judged>(`${from}.dropped.jsonl`))];
  const kept: Pair[] = [];
  const counts = { judged: 0, kept: 0, chosenRight: 0, byType: {} as Record<string, number> };
  for (const r of records) {
    const [p, d] = r.preferred === undefined ? [r.chosen, r.rejected] : [r.preferred, r.dispreferred!];
    if (p === undefined || d === undefined || !r.reference) continue;  // a skipped question
    counts.judged++;
    const verdict = judgeGraded(r.type ?? undefined, r.reference, p, d);
    if (!verdict.keep) continue;
    const { preferred: _p, dispreferred: _d, ...rest } = r;
    kept.push({ ...rest, chosen: p, rejected: d, judge: verdict } as Pair);
    counts.kept++;
    counts.chosenRight += Number(verdict.preferredCorrect);
    counts.byType[r.type ?? '?'] = (counts.byType[r.type ?? '?'] ?? 0) + 1;
  }
  await mkdir(pairsDir, { recursive: true });
  await writeJsonl(to, kept);
  await writeJsonFile(`${to}.summary.json`, counts);
  log(`  ${judge} judge: kept ${counts.kept} of ${counts.judged}, chosen exactly right ${counts.chosenRight}; ${JSON.stringify(counts.byType)}`);
  return kept;
}

type Result = { arm: string; group: string; seed: number; results: EvalResults['results'] };

/** results.md (and one chart per group) from every results-*.json under --out. */
async function aggregate(): Promise<void> {
  const prefix = `results-${recipe}-${evalSplit}-n${size}-`;
  const files = (await readdir(out)).filter((f) => f.startsWith(prefix) && /^[\d-]+\.json$/.test(f.slice(prefix.length)));
  const all: Result[] = [];
  for (const f of files) all.push(...(JSON.parse(await readFile(join(out, f), 'utf8')) as Result[]));
  all.sort((a, b) => a.seed - b.seed);
  const skipped = new Set<string>();
  for (const f of (await readdir(out)).filter((f) => f.startsWith(`infeasible-${recipe}-`)))
    for (const s of JSON.parse(await readFile(join(out, f), 'utf8')) as string[]) skipped.add(s);
  const notes = skipped.size ? `\nNot run (the pool of pairs is too small):\n\n${[...skipped].map((s) => `- ${s}`).join('\n')}\n` : '';
  const md = join(out, `results-${recipe}-${evalSplit}-n${size}.md`);
  await writeFile(md, `World seed ${worldSeed}, ${evalSplit} split's long videos, recipe ${recipe}\n` + table(all) + notes);
  log(`wrote ${md} from ${files.join(', ')}`);
}

/** Mean ± sample standard deviation over seeds, per arm: overall, localized, comprehensive (long test videos). */
function table(results: Result[]): string {
  const cats = ['overall', 'kind=localized', 'kind=comprehensive'];
  const value = (r: EvalResults['results'], cat: string) => 100 * (cat === 'overall' ? r.accuracy : r.byCategory[cat]?.accuracy ?? NaN);
  const lines: string[] = [];
  for (const group of ['methods', 'mix', 'size']) {
    const arms = [...new Set(results.filter((r) => r.group === group).map((r) => r.arm))];
    if (!arms.length) continue;
    lines.push(`\n### ${group}\n`, `| arm | seeds | ${cats.join(' | ')} |`, `|---|---|${cats.map(() => '---').join('|')}|`);
    const stats = arms.map((arm) => {
      const runs = results.filter((r) => r.group === group && r.arm === arm);
      return { arm, n: runs.length, cats: cats.map((cat) => meanStd(runs.map((r) => value(r.results, cat)))) };
    });
    for (const s of stats) lines.push(`| ${s.arm} | ${s.n} | ${s.cats.map(([m, d]) => `${m.toFixed(1)} ± ${d.toFixed(1)}`).join(' | ')} |`);
    void writeFile(join(out, `results-${recipe}-${evalSplit}-n${size}-${group}.svg`), barChart({
      title: `Long test videos: ${group}`, yLabel: 'accuracy (%)', groups: cats,
      series: stats.map((s) => ({ name: s.arm, values: s.cats.map(([m]) => m), errors: s.cats.map(([, d]) => d) })),
    }));
    lines.push('', `![${group}](results-${recipe}-${evalSplit}-n${size}-${group}.svg)`);
  }
  return lines.join('\n') + '\n';
}

function meanStd(xs: number[]): [number, number] {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.length > 1 ? xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1) : 0;
  return [mean, Math.sqrt(variance)];
}

(values.aggregate ? aggregate() : main()).catch((error: Error) => {
  process.stderr.write(`experiment: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
