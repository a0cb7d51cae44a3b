// The gate a base curriculum is chosen on (issue 16, docs/results.md): what a base perceives, measured on a world's
// *validation* long videos only. For each localized colour / shape / motion question the base answers from the target
// event's segment alone (TPO's preferred input), so a wrong answer there is a failure to see, not to find; for count
// questions it answers from the dense video (16 frames), and the report gives how many answers are above 5.
//
//   node dist/scripts/measure-base.js --base DIR [--world runs/s0/world] [--videos 40] [--out runs/measure/NAME]
//                                     [--types color,shape,motion,count,count-color] [--frames 16]
//
// --world is an experiment.ts world folder (val-long-benchmark.jsonl and its videos). Answers are greedy, 24 new
// tokens; the answers are kept under --out (<out>/answers.jsonl and .dropped.jsonl) and the numbers in
// <out>/measure.json.
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { filterJsonl, writeJsonFile } from '../lib/data/jsonl.js';
import { PACKAGED_BASE } from '../lib/demo/demo.js';
import { generatePairs } from '../lib/tpo/generate.js';
import { answerMatches } from '../lib/tpo/judge.js';

const { values } = parseArgs({
  options: {
    base: { type: 'string', default: PACKAGED_BASE }, world: { type: 'string', default: 'runs/s0/world' },
    videos: { type: 'string', default: '40' }, out: { type: 'string', default: 'runs/measure/base' },
    types: { type: 'string', default: 'color,shape,motion,count,count-color' },
    /** Frames each answer sees (16, as the pool and the evaluation; 1 to gate a single-frame stage's checkpoint). */
    frames: { type: 'string', default: '16' },
  },
});
const world = resolve(values.world);
const out = resolve(values.out);
const types = new Set(values.types.split(','));
const videos = Number(values.videos);

// The first `videos` validation videos of the long kind, and only the measured question types.
await mkdir(out, { recursive: true });
const questions = join(out, 'questions.jsonl');
const chosenVideos = new Set<string>();
await filterJsonl(join(world, 'val-long-benchmark.jsonl'), questions, (r) => {
  if (!chosenVideos.has(r.video as string) && chosenVideos.size >= videos) return false;
  chosenVideos.add(r.video as string);
  return types.has(r.type as string);
});
const answers = join(out, 'answers.jsonl');
// The mix is the questions' own (without a pair target it is the share of each kind asked): every question is asked.
const asked = (await readFile(questions, 'utf8')).split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { kind: string }).kind);
const mix: [number, number] = [asked.filter((k) => k === 'localized').length, asked.filter((k) => k === 'comprehensive').length];
await generatePairs({ model: resolve(values.base), questions, videoRoot: world, out: answers, manipulation: 'tpo', frames: Number(values.frames),
  mix: mix[0] + mix[1] ? mix : [1, 1], maxNewTokens: 24, judge: 'synthetic' });

interface Row { type: string; reference: string; chosen?: string; preferred?: string }
const read = async (file: string) => (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
const rows = [...await read(answers), ...await read(`${answers}.dropped.jsonl`)].filter((r) => (r.chosen ?? r.preferred) !== undefined);
const byType: Record<string, { asked: number; right: number; rightPct: number; answers: Record<string, number>; aboveFive?: number; truthAboveFive?: number }> = {};
for (const r of rows) {
  const said = (r.chosen ?? r.preferred)!.trim();
  const t = (byType[r.type] ??= { asked: 0, right: 0, rightPct: 0, answers: {} });
  t.asked++;
  if (answerMatches(said, r.reference)) t.right++;
  t.answers[said] = (t.answers[said] ?? 0) + 1;
  if (r.type.startsWith('count')) {
    t.aboveFive = (t.aboveFive ?? 0) + (Number(said) > 5 ? 1 : 0);
    t.truthAboveFive = (t.truthAboveFive ?? 0) + (Number(r.reference) > 5 ? 1 : 0);
  }
}
for (const t of Object.values(byType)) {
  t.rightPct = Math.round((1000 * t.right) / t.asked) / 10;
  t.answers = Object.fromEntries(Object.entries(t.answers).sort((a, b) => b[1] - a[1]).slice(0, 8));
}
await writeJsonFile(join(out, 'measure.json'), { base: resolve(values.base), world, videos: chosenVideos.size, byType });
for (const [type, t] of Object.entries(byType)) {
  const counts = t.aboveFive === undefined ? '' : `  answers >5: ${t.aboveFive} (truth >5: ${t.truthAboveFive})`;
  process.stdout.write(`${type.padEnd(12)} ${String(t.right).padStart(4)}/${String(t.asked).padEnd(4)} ${String(t.rightPct).padStart(5)}%${counts}  top: ${JSON.stringify(t.answers)}\n`);
}
