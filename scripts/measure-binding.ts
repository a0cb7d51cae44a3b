// Whether a base picks the asked event among two (docs/results.md, issue 16 "continued 6"): on a world's two-event
// videos, the shape questions whose two events differ in shape, answered about the whole video (near-greedy, the
// `none` manipulation's first answer). Each answer is the asked event's shape, the other event's, or neither: a model
// that reads whatever object is in the frames names the other one about as often as the asked one.
//
//   node dist/scripts/measure-binding.js --base MODEL --world DIR [--questions 150] [--frames 16] [--out runs/binding/NAME]
//                                        [--video-after-question]
//
// --world: a writeSynthDataset folder of two-event videos (its train split), e.g. continue-stage's
// `--events 2,2` world, or one made only for this with another seed. --video-after-question asks "Which shape is
// red?\n<image>", for a model continue-stage trained that way.
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { IMAGE_PLACEHOLDER } from '../lib/data/encode.js';
import { writeJsonFile, writeJsonl } from '../lib/data/jsonl.js';
import { generatePairs } from '../lib/tpo/generate.js';
import { answerMatches } from '../lib/tpo/judge.js';

const { values: v } = parseArgs({
  options: {
    base: { type: 'string' }, world: { type: 'string' }, questions: { type: 'string', default: '150' },
    frames: { type: 'string', default: '16' }, out: { type: 'string', default: 'runs/binding/base' },
    'video-after-question': { type: 'boolean', default: false },
  },
});
if (!v.base || !v.world) throw new Error('measure-binding: --base (a model folder) and --world are required');
const world = resolve(v.world);
const out = resolve(v.out);
await mkdir(out, { recursive: true });
interface Event { shape: string }
const lines = async (file: string) => (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
const eventsOf = new Map((await lines(join(world, 'train-annotations.jsonl'))).map((a) => [a.video as string, a.events as Event[]]));
const wanted = Number(v.questions);
let taken = 0;
// generatePairs asks a synthetic benchmark record's open question (open_question), not its lettered one
const questions = join(out, 'questions.jsonl');
await writeJsonl(questions, (await lines(join(world, 'train-benchmark.jsonl'))).filter((r) => {
  const events = eventsOf.get(r.video as string);
  if (r.type !== 'shape' || events?.length !== 2 || events[0]!.shape === events[1]!.shape || taken >= wanted) return false;
  taken++;
  return true;
}).map((r) => (v['video-after-question'] ? { ...r, open_question: `${String(r.open_question)}\n${IMAGE_PLACEHOLDER}` } : r)));
const answers = join(out, 'answers.jsonl');
await generatePairs({ model: resolve(v.base), questions, videoRoot: world, out: answers, manipulation: 'none', temperature: 0.01,
  frames: Number(v.frames), mix: [1, 0], maxNewTokens: 8, judge: 'synthetic' });
const asked = new Map((await lines(questions)).map((q) => [q.id as string, q]));
const tally = { asked: 0, other: 0, neither: 0 };
for (const r of [...await lines(answers), ...await lines(`${answers}.dropped.jsonl`)]) {
  const said = String(r.chosen ?? r.preferred ?? '').trim();
  const q = asked.get(r.id as string)!;
  const events = eventsOf.get(q.video as string)!;
  const target = (q.events as number[])[0]!;
  // the judge's own comparison (case, articles, punctuation), as measure-base scores
  if (answerMatches(said, events[target]!.shape)) tally.asked++;
  else if (answerMatches(said, events[1 - target]!.shape)) tally.other++;
  else tally.neither++;
}
await writeJsonFile(join(out, 'binding.json'), { base: resolve(v.base), world, questions: taken, ...tally });
process.stdout.write(`${taken} questions: the asked event's shape ${tally.asked}, the other event's ${tally.other}, neither ${tally.neither}\n`);
