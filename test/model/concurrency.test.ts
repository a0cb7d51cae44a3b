// native/binding/model_handle.h: the concurrency contract of a model handle, under load. Many logprobs calls in
// flight while setLoraEnabled flips, mergeLora / addLora / setTrainable are tried, training steps run and the model
// is disposed: no crash, every result exactly the adapter-on or the adapter-off one (the setting the call was made
// with), mutations refused with ERR_TPO_BUSY while calls run, a Trainer refusing steps once the model changed.
// Runs in a child process: a crash (as mergeLora freeing adapters under running calls did) fails the test.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { FIXTURES, removeDir, ROOT, runNode, tempDir } from '../helpers.js';

const QWEN2 = join(FIXTURES, 'hf', 'qwen2');

function run(body: string) {
  const code = `
    const tpo = await import(${JSON.stringify(join(ROOT, 'dist/lib/index.js'))});
    const { tensor, VideoLM, Optimizer } = tpo;
    const ids = (...xs) => tensor(new BigInt64Array(xs.map(BigInt)));
    const prompt = ids(1, 5, 9, 17, 33);
    const answers = [ids(3, 4, 8), ids(7), ids(12, 2)];
    const score = async (m) => [...(await m.logprobs({ prompt, answers })).sums.toTypedArray()];
    const same = (a, b) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
    const code = async (p) => { try { await p; return 'ok'; } catch (e) { return e.code + ': ' + e.message; } };
    const tryNow = (f) => { try { f(); return 'ok'; } catch (e) { return e.code + ': ' + e.message; } };
    // An adapter whose B is not zero, so adapter-on and adapter-off differ.
    async function adapted(dir) {
      const seedModel = await VideoLM.load(${JSON.stringify(QWEN2)});
      seedModel.addLora({ r: 4, alpha: 8, seed: 1 });
      await seedModel.saveLora(dir);
      const file = dir + '/adapter_model.safetensors';
      const { tensors } = await tpo.readSafetensors(file);
      for (const [k, t] of Object.entries(tensors))
        if (k.includes('lora_B')) tensors[k] = tensor(new Float32Array(t.numel).map((_, i) => Math.sin(i * 12.9898) * 0.05), t.shape);
      await tpo.writeSafetensors(file, tensors);
      const m = await VideoLM.load(${JSON.stringify(QWEN2)});
      await m.loadLora(dir);
      return m;
    }
    const result = await (async () => { ${body} })();
    console.log(JSON.stringify(result));
  `;
  const r = runNode(code, { timeout: 300_000, killSignal: 'SIGKILL' });
  assert.equal(r.status, 0, `the child crashed or failed (status ${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

describe('model handles under concurrent use', function () {
  this.timeout(600_000);
  let dir: string;
  before(() => {
    dir = tempDir('tpo-concurrency-');
  });
  after(() => removeDir(dir));

  it('logprobs in flight while setLoraEnabled flips give exactly adapter-on or adapter-off, as each call was made', () => {
    const r = run(`
      const m = await adapted(${JSON.stringify(join(dir, 'a'))});
      const on = await score(m);
      m.setLoraEnabled(false);
      const off = await score(m);
      m.setLoraEnabled(true);
      const calls = [];
      for (let i = 0; i < 80; i++) {
        const enabled = (i * 7919) % 3 !== 0;
        m.setLoraEnabled(enabled);
        calls.push(score(m).then((s) => ({ enabled, s })));
      }
      const results = await Promise.all(calls);
      return {
        differ: !same(on, off),
        wrong: results.filter((x) => !same(x.s, x.enabled ? on : off)).length,
        neither: results.filter((x) => !same(x.s, on) && !same(x.s, off)).length,
        count: results.length,
      };
    `);
    assert.ok(r.differ, 'the adapter changes the scores');
    assert.equal(r.count, 80);
    assert.equal(r.neither, 0, 'results that are neither adapter-on nor adapter-off');
    assert.equal(r.wrong, 0, "results that are not the setting of their call's moment");
  });

  it('refuses mergeLora, addLora and setTrainable while calls run; merges once they settle', () => {
    const r = run(`
      const m = await adapted(${JSON.stringify(join(dir, 'b'))});
      const on = await score(m);
      const calls = [];
      for (let i = 0; i < 40; i++) calls.push(score(m));
      const merge = tryNow(() => m.mergeLora());
      const add = tryNow(() => m.addLora({ r: 2 }));
      const trainable = tryNow(() => m.setTrainable({ lora: true }));
      const info = m.info.parameters;  // never waits, never refused
      const results = await Promise.all(calls);
      const merged = m.mergeLora();
      const after = await score(m);
      return {
        merge, add, trainable, info, merged,
        allOn: results.every((s) => same(s, on)),
        close: after.every((x, i) => Math.abs(x - on[i]) < 1e-4),
      };
    `);
    for (const key of ['merge', 'add', 'trainable'] as const)
      assert.match(r[key], /^ERR_TPO_BUSY: Model\.\w+: \d+ call\(s\) on this model are still running; await them first/, `${key}: ${r[key]}`);
    assert.ok(r.info > 0);
    assert.equal(r.allOn, true);
    assert.equal(r.merged, 14);
    assert.equal(r.close, true, 'merged weights score as the adapter did');
  });

  it('a training step and logprobs in flight together: every score is before or after the step, never between', () => {
    const r = run(`
      const m = await adapted(${JSON.stringify(join(dir, 'c'))});
      m.setTrainable({ lora: true });
      const optimizer = new Optimizer(m);
      const pair = { prompt, chosen: ids(3, 4, 8), rejected: ids(7, 7) };
      const before = await score(m);
      const calls = [];
      for (let i = 0; i < 20; i++) calls.push(score(m));
      const step = optimizer.preferenceStep({ microBatches: [[pair]], lr: 0.05 });
      for (let i = 0; i < 20; i++) calls.push(score(m));
      const [results, stepped] = await Promise.all([Promise.all(calls), step]);
      const after = await score(m);
      // The model changed (a step made), so this Trainer's parameter list is stale: it refuses to step.
      m.mergeLora();
      const stale = await code(optimizer.preferenceStep({ microBatches: [[pair]], lr: 0.05 }));
      return {
        changed: !same(before, after),
        between: results.filter((s) => !same(s, before) && !same(s, after)).length,
        loss: stepped.metrics.loss,
        stale,
      };
    `);
    assert.ok(r.changed, 'the step changed the scores');
    assert.equal(r.between, 0);
    assert.ok(Number.isFinite(r.loss));
    assert.match(r.stale, /adapters or trainable parameters changed since this Trainer was made.*make a new Trainer/);
  });

  it('dispose() while calls run lets them finish; loadLora waits for them instead of changing the model under them', () => {
    const r = run(`
      const m = await VideoLM.load(${JSON.stringify(QWEN2)});
      const base = await score(m);
      const seedModel = await adapted(${JSON.stringify(join(dir, 'd'))});
      seedModel.dispose();
      const calls = [];
      for (let i = 0; i < 30; i++) calls.push(score(m));
      const loading = m.loadLora(${JSON.stringify(join(dir, 'd'))});
      for (let i = 0; i < 10; i++) calls.push(score(m));
      await loading;
      const adaptedScores = await score(m);
      const results = await Promise.all(calls);
      const last = [];
      for (let i = 0; i < 10; i++) last.push(score(m));
      m.dispose();
      const settled = await Promise.all(last);
      return {
        neither: results.filter((s) => !same(s, base) && !same(s, adaptedScores)).length,
        differ: !same(base, adaptedScores),
        settled: settled.every((s) => same(s, adaptedScores)),
        disposed: await code(score(m)),
      };
    `);
    assert.equal(r.differ, true);
    assert.equal(r.neither, 0);
    assert.equal(r.settled, true);
    assert.match(r.disposed, /Model was disposed/);
  });
});
