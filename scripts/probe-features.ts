// What a model's visual tokens carry (docs/results.md, issue 16: why the base does not see shape). For the one-event
// videos of a synth world (e.g. a probe-stage world), each video's frame as training takes it (decoded from its file,
// uniform sampling of --frames frames, the model's processor), then:
// - the decode check: those pixels against the world's own render of the same video (makeVideo + the native
//   renderer, preprocessed the same way): a layout or colour bug between the renderer and the tower shows here;
// - linear probes: ridge classifiers (closed form, in the dual) of the event's shape and colour, fitted on the first
//   half of the videos and scored on the second, on the preprocessed pixels and on each model's visual tokens
//   (encodeVideo: projected, pooled, newline tokens dropped), and on the pooled tokens' norms against the text
//   embeddings' (does the projector scale features to nothing?).
//
//   node dist/scripts/probe-features.js --world runs/probe-shape-1000/world-probe --models DIR[,DIR...]
//                                       [--videos 600] [--frames 1] [--lambda 1,10,100]
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { ModelSession } from '../lib/model/session.js';
import { readSafetensors } from '../lib/model/safetensors.js';
import { renderVideo } from '../lib/synthetic/render.js';
import { makeVideo, type WorldOptions } from '../lib/synthetic/world.js';
import { preprocessFrames } from '../lib/video/preprocess.js';

const { values } = parseArgs({
  options: {
    world: { type: 'string', default: 'runs/probe-shape-1000/world-probe' }, models: { type: 'string' },
    videos: { type: 'string', default: '600' }, frames: { type: 'string', default: '1' },
    lambda: { type: 'string', default: '1,10,100' },
  },
});
if (!values.models) throw new Error('probe-features: --models DIR[,DIR...] is required');
const world = resolve(values.world);
const n = Number(values.videos);
const frames = Number(values.frames);
const lambdas = values.lambda.split(',').map(Number);

interface Annotation { video: string; seed: number; events: { shape: string; color: string }[] }
const synth = JSON.parse(await readFile(join(world, 'synth.json'), 'utf8')) as { identity: { world: WorldOptions } };
const annotations = (await readFile(join(world, 'train-annotations.jsonl'), 'utf8')).split('\n').filter(Boolean)
  .map((l) => JSON.parse(l) as Annotation).filter((a) => a.events.length === 1).slice(0, n);
const labels = (key: 'shape' | 'color') => {
  const names = [...new Set(annotations.map((a) => a.events[0]![key]))].sort();
  return { names, y: annotations.map((a) => names.indexOf(a.events[0]![key])) };
};
const shape = labels('shape');
const color = labels('color');

/** Standardised features (train half's mean and std), then ridge in the dual: accuracy on the held-out half. */
function ridgeAccuracy(x: Float64Array[], y: number[], classes: number, lambda: number): number {
  const half = Math.floor(x.length / 2), d = x[0]!.length;
  const mean = new Float64Array(d), sd = new Float64Array(d);
  for (let i = 0; i < half; i++) for (let j = 0; j < d; j++) mean[j]! += x[i]![j]! / half;
  for (let i = 0; i < half; i++) for (let j = 0; j < d; j++) sd[j]! += (x[i]![j]! - mean[j]!) ** 2 / half;
  const z = x.map((row) => row.map((v, j) => (v - mean[j]!) / (Math.sqrt(sd[j]!) + 1e-8)));
  const dot = (a: Float64Array, b: Float64Array) => { let s = 0; for (let j = 0; j < d; j++) s += a[j]! * b[j]!; return s; };
  // (K + lambda d I) alpha = Y one-hot (centred), K = Z Z^T over the train half.
  const k = Array.from({ length: half }, (_, i) => Float64Array.from({ length: half + classes }, (_, j) =>
    j < half ? dot(z[i]!, z[j]!) + (i === j ? lambda * d / 100 : 0) : (y[i] === j - half ? 1 : 0) - 1 / classes));
  for (let c = 0; c < half; c++) {  // Gauss-Jordan (symmetric positive definite: no pivoting needed)
    const p = k[c]![c]!;
    for (let j = c; j < half + classes; j++) k[c]![j]! /= p;
    for (let r = 0; r < half; r++) {
      if (r === c) continue;
      const f = k[r]![c]!;
      if (f !== 0) for (let j = c; j < half + classes; j++) k[r]![j]! -= f * k[c]![j]!;
    }
  }
  let right = 0;
  for (let i = half; i < x.length; i++) {
    const scores = new Float64Array(classes);
    for (let t = 0; t < half; t++) { const s = dot(z[i]!, z[t]!); for (let c = 0; c < classes; c++) scores[c]! += s * k[t]![half + c]!; }
    let best = 0;
    for (let c = 1; c < classes; c++) if (scores[c]! > scores[best]!) best = c;
    if (best === y[i]) right++;
  }
  return right / (x.length - half);
}

function report(what: string, x: Float64Array[]): void {
  const best = (l: { y: number[]; names: string[] }) => Math.max(...lambdas.map((lambda) => ridgeAccuracy(x, l.y, l.names.length, lambda)));
  console.log(`${what.padEnd(60)} shape ${(100 * best(shape)).toFixed(1).padStart(5)}%  colour ${(100 * best(color)).toFixed(1).padStart(5)}%  (d ${x[0]!.length})`);
}

const models = values.models.split(',').map((m) => resolve(m));
let pixels: Float64Array[] | undefined;
for (const model of models) {
  using session = await ModelSession.open(model);
  const tokens: Float64Array[] = [];
  const rows: Float64Array[] = [];
  let maxDiff = 0, sumDiff = 0, count = 0, perToken = 0;
  for (const a of annotations) {
    const { pixels: p, indices } = await session.pixels(join(world, a.video), { kind: 'uniform', frames });
    if (!pixels) {
      // The same frames straight from the renderer, preprocessed the same way.
      const video = makeVideo(a.seed, synth.identity.world);
      const rendered = await renderVideo(video);
      const picked = rendered.indexSelect(0, indices);
      const q = await preprocessFrames(picked, session.processor!);
      const pa = p.toTypedArray(), qa = q.toTypedArray();
      for (let i = 0; i < pa.length; i++) { const diff = Math.abs(pa[i]! - qa[i]!); maxDiff = Math.max(maxDiff, diff); sumDiff += diff; count++; }
      rendered.dispose(); picked.dispose(); q.dispose();
      rows.push(Float64Array.from(pa));
    }
    const t = await session.model.encodeVideo(p);
    const [v, dim] = t.shape as [number, number];
    const data = t.toTypedArray();
    // LLaVA's grid newlines: one after each pooled row (side + 1 tokens a row); keep the pooled tokens only.
    const side = Math.round((-1 + Math.sqrt(1 + 4 * v / frames)) / 2);
    const kept: number[] = [];
    for (let i = 0; i < v; i++) if ((i % (side + 1)) !== side) kept.push(i);
    const row = new Float64Array(kept.length * dim);
    kept.forEach((i, k) => { for (let j = 0; j < dim; j++) row[k * dim + j] = data[i * dim + j]!; });
    for (const i of kept) { let s = 0; for (let j = 0; j < dim; j++) s += data[i * dim + j]! ** 2; perToken += Math.sqrt(s) / kept.length / annotations.length; }
    tokens.push(row);
    t.dispose(); p.dispose();
  }
  if (!pixels) {
    pixels = rows;
    console.log(`decode check (${annotations.length} videos, ${frames} frame(s) each, preprocessed units [-1, 1]): max |decoded - rendered| ${maxDiff.toFixed(4)}, mean ${(sumDiff / count).toFixed(5)}`);
    report('pixels (preprocessed)', pixels);
  }
  const weights = await readSafetensors(join(model, 'model.safetensors'), { keys: ['model.embed_tokens.weight'] });
  const e = weights.tensors['model.embed_tokens.weight']!;
  const [vocab, width] = e.shape as [number, number];
  const ed = e.toTypedArray() as Float32Array;
  let embedNorm = 0;
  for (let i = 0; i < vocab; i++) { let s = 0; for (let j = 0; j < width; j++) s += ed[i * width + j]! ** 2; embedNorm += Math.sqrt(s) / vocab; }
  e.dispose();
  console.log(`${model}: visual token norm ${perToken.toFixed(3)} (mean), text embedding norm ${embedNorm.toFixed(3)} (mean over the vocabulary)`);
  report(`visual tokens of ${model.split('/').slice(-2).join('/')}`, tokens);
}
