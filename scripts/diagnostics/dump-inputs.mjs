// Issue 16 diagnostic: a probe world's first N open records as tpo's trainer makes them (one uniformly sampled frame,
// preprocessed; prompt ids with -200 for the video; answer ids), for replica.py.
//   node scripts/diagnostics/dump-inputs.mjs WORLD MODEL OUT.safetensors N   (after npm run build)
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ModelSession } from '../../dist/lib/model/session.js';
import { encodeSft } from '../../dist/lib/data/encode.js';
import { writeSafetensors } from '../../dist/lib/model/safetensors.js';
import { tensor } from '../../dist/lib/tensor.js';
const [world, model, out, n] = process.argv.slice(2);
const recs = (await readFile(join(world, 'train-open.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l)).slice(0, Number(n));
const s = await ModelSession.open(resolve(model));
const pix = new Float32Array(recs.length * 3 * 64 * 64);
const L = 64; const ids = new Int32Array(recs.length * L).fill(-1); const plen = new Int32Array(recs.length); const alen = new Int32Array(recs.length);
const shapes = ['circle', 'square', 'triangle', 'diamond', 'cross', 'ring']; const lab = new Int32Array(recs.length);
for (const [i, r] of recs.entries()) {
  const { pixels } = await s.pixels(join(world, r.video), { kind: 'uniform', frames: 1 });
  pix.set(pixels.toTypedArray(), i * 3 * 64 * 64); pixels.dispose();
  const e = encodeSft(s.tokenizer, r, { visualTokens: 20 });
  ids.set(e.inputIds, i * L); plen[i] = e.promptLength; alen[i] = e.inputIds.length - e.promptLength; lab[i] = shapes.indexOf(r.answer);
}
await writeSafetensors(out, { pixels: tensor(pix, [recs.length, 3, 64, 64]), ids: tensor(ids, [recs.length, L]), plen: tensor(plen), alen: tensor(alen), label: tensor(lab) });
console.log('wrote', out, recs.length, 'example ids', Array.from(ids.subarray(0, plen[0] + alen[0])));
