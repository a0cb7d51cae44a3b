// native/model/loader.cc, weights.cc, parameters.cc and io/safetensors.cc: loading checks the checkpoint's header
// against the config before any weight memory exists, reads each weight straight into its parameter (peak memory
// about the checkpoint's size), converts a checkpoint of mixed dtypes to one, and keeps no tie to the file, so a
// file truncated or rewritten after loading changes nothing and cannot raise SIGBUS (memory-mapped loading, asked
// for, turns such a change into an error). Memory is measured in child processes (peak RSS).
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, openSync, readFileSync, statSync, truncateSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';

import { readSafetensors, tensor, VideoLM, writeSafetensors, type Tensor } from '../../lib/index.js';
import { FIXTURES, removeDir, ROOT, runNode, tempDir } from '../helpers.js';

const QWEN2 = join(FIXTURES, 'hf', 'qwen2');
const INDEX = JSON.stringify(join(ROOT, 'dist/lib/index.js'));
const MB = 2 ** 20;

/** The qwen2 fixture with some tensors replaced, as a model folder. */
async function variant(dir: string, name: string, change: (tensors: Record<string, Tensor>) => void): Promise<string> {
  const out = join(dir, name);
  mkdirSync(out);
  copyFileSync(join(QWEN2, 'config.json'), join(out, 'config.json'));
  const { tensors } = await readSafetensors(QWEN2);
  change(tensors);
  await writeSafetensors(join(out, 'model.safetensors'), tensors);
  for (const t of Object.values(tensors)) t.dispose();
  return out;
}

async function scores(model: VideoLM): Promise<number[]> {
  const r = await model.logprobs({
    prompt: tensor(new BigInt64Array([1n, 5n, 9n, 17n])),
    answers: [tensor(new BigInt64Array([3n, 4n])), tensor(new BigInt64Array([7n]))],
  });
  return [...(r.sums.toTypedArray() as Float32Array)];
}

/** Runs `body` in a child after importing tpo; returns the JSON it prints last, and the peak RSS growth. */
function child(body: string, timeout = 300_000) {
  const code = `
    const tpo = await import(${INDEX});
    tpo.runtimeInfo();  // libtorch loaded: what follows is the work's own memory
    const rss0 = process.memoryUsage().rss;
    const result = await (async () => { ${body} })();
    const peak = tpo.peakRss();  // (maxRSS would carry the parent's RSS: this runs under mocha)
    console.log(JSON.stringify({ result, growthMB: (peak - rss0) / ${MB} }));
  `;
  const r = runNode(code, { timeout, killSignal: 'SIGKILL' });
  return { ...r, parsed: r.status === 0 ? JSON.parse(r.stdout.trim().split('\n').pop()!) as { result: unknown; growthMB: number } : undefined };
}

describe('model loading', function () {
  this.timeout(600_000);
  let dir: string;
  before(() => {
    dir = tempDir('tpo-loading-');
  });
  after(() => removeDir(dir));

  it('checks the header against a much larger config before allocating anything', () => {
    // A 0.5B-parameter config (2 GB of float32) beside the tiny checkpoint: the shapes disagree, and that is
    // found with no weight allocated (it used to build and randomly initialise the whole model first).
    const big = join(dir, 'big-config');
    mkdirSync(big);
    const config = JSON.parse(readFileSync(join(QWEN2, 'config.json'), 'utf8'));
    Object.assign(config, { vocab_size: 32000, hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16, num_key_value_heads: 4 });
    writeFileSync(join(big, 'config.json'), JSON.stringify(config));
    copyFileSync(join(QWEN2, 'model.safetensors'), join(big, 'model.safetensors'));
    const r = child(`
      try { await tpo.VideoLM.load(${JSON.stringify(big)}); return 'loaded'; } catch (e) { return e.message; }
    `);
    assert.equal(r.status, 0, r.stderr.slice(-1000));
    const { result, growthMB } = r.parsed!;
    assert.match(String(result), /model\.safetensors does not fit this model/);
    assert.match(String(result), /model\.embed_tokens\.weight: checkpoint \[128, 64\], model \[32000, 1024\]/);
    assert.match(String(result), /22 missing key\(s\)|missing key\(s\)/);
    // (This grows ~6 MB. The model is 1.9 GB of float32: building and initialising it first, as before, grew RSS by
    // 1651 MB.)
    assert.ok(growthMB < 200, `checking the header grew RSS by ${growthMB.toFixed(0)} MB`);
  });

  it('loads a ~200 MB bfloat16 checkpoint with a peak about its own size', async () => {
    const folder = join(dir, 'bf16');
    // ~100M parameters: 200 MB in bfloat16. Made (and saved) in a child, so this process stays small.
    const config = {
      ...JSON.parse(readFileSync(join(QWEN2, 'config.json'), 'utf8')),
      vocab_size: 16384, hidden_size: 1024, intermediate_size: 2816, num_hidden_layers: 8, num_attention_heads: 16, num_key_value_heads: 4,
    };
    const made = child(`
      const m = await tpo.VideoLM.create(${JSON.stringify(config)}, { seed: 1, dtype: 'bfloat16' });
      await m.save(${JSON.stringify(folder)});
      return m.info.parameters;
    `);
    assert.equal(made.status, 0, made.stderr.slice(-1000));
    const fileMB = statSync(join(folder, 'model.safetensors')).size / MB;
    assert.ok(fileMB > 180 && fileMB < 260, `checkpoint of ${fileMB} MB`);
    const r = child(`
      const m = await tpo.VideoLM.load(${JSON.stringify(folder)});
      return [m.info.dtype, m.info.convertedTensors];
    `);
    assert.equal(r.status, 0, r.stderr.slice(-1000));
    assert.deepEqual(r.parsed!.result, ['bfloat16', 0]);
    // It was 3x (a float32 model initialised, then the mapped weights beside it): now the weights and little else.
    assert.ok(r.parsed!.growthMB < fileMB * 1.25, `loading ${fileMB.toFixed(0)} MB grew RSS by ${r.parsed!.growthMB.toFixed(0)} MB`);
  });

  it('converts a checkpoint of mixed dtypes to the dtype most of it has, at load', async () => {
    const mixed = await variant(dir, 'mixed', (t) => {
      t['model.layers.0.mlp.up_proj.weight'] = t['model.layers.0.mlp.up_proj.weight']!.to('float16');
      t['model.norm.weight'] = t['model.norm.weight']!.to('bfloat16');
    });
    using reference = await VideoLM.load(QWEN2);
    using model = await VideoLM.load(mixed);
    assert.equal(model.info.dtype, 'float32');
    assert.equal(model.info.convertedTensors, 2);
    const [want, got] = [await scores(reference), await scores(model)];
    got.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-2, `${v} vs ${want[i]}`));
    using half = await VideoLM.load(mixed, { dtype: 'bfloat16' });
    assert.equal(half.info.dtype, 'bfloat16');
    assert.equal((await scores(half)).length, 2);
  });

  it('refuses a weight that is not floating point, naming it', async () => {
    const ints = await variant(dir, 'ints', (t) => {
      t['model.layers.1.self_attn.q_proj.bias'] = t['model.layers.1.self_attn.q_proj.bias']!.to('int32');
    });
    await assert.rejects(VideoLM.load(ints), /1 weight\(s\) not floating point:\n  model\.layers\.1\.self_attn\.q_proj\.bias is I32/);
  });

  it('refuses weights holding NaN or infinity, naming the tensor', async () => {
    const nan = await variant(dir, 'nan', (t) => {
      const values = t['model.layers.0.self_attn.o_proj.weight']!.toTypedArray() as Float32Array;
      values[77] = NaN;
      t['model.layers.0.self_attn.o_proj.weight'] = tensor(values, [64, 64]);
    });
    await assert.rejects(VideoLM.load(nan), /tensor 'model\.layers\.0\.self_attn\.o_proj\.weight' holds NaN or infinite values \(the first at flat index 77\)/);
    const inf = await variant(dir, 'inf', (t) => {
      const values = t['lm_head.weight']!.toTypedArray() as Float32Array;
      values[3] = -Infinity;
      t['lm_head.weight'] = tensor(values, [128, 64]);
    });
    await assert.rejects(VideoLM.load(inf), /tensor 'lm_head\.weight' holds NaN or infinite values \(the first at flat index 3\)/);
  });

  it('keeps its numbers when the weight file is truncated or rewritten after loading', () => {
    const folder = join(dir, 'truncated');
    mkdirSync(folder);
    copyFileSync(join(QWEN2, 'config.json'), join(folder, 'config.json'));
    const file = join(folder, 'model.safetensors');
    copyFileSync(join(QWEN2, 'model.safetensors'), file);
    const body = (mmap: boolean) => `
      const { tensor } = tpo;
      const m = await tpo.VideoLM.load(${JSON.stringify(folder)}, { mmap: ${mmap} });
      const score = async () => [...(await m.logprobs({
        prompt: tensor(new BigInt64Array([1n, 5n, 9n, 17n])), answers: [tensor(new BigInt64Array([3n, 4n]))],
      })).sums.toTypedArray()];
      const before = await score();
      const fs = await import('node:fs');
      fs.truncateSync(${JSON.stringify(file)}, 4096);
      let after;
      try { after = await score(); } catch (e) { after = e.message; }
      fs.copyFileSync(${JSON.stringify(join(QWEN2, 'model.safetensors'))}, ${JSON.stringify(file)});
      return { before, after };
    `;
    const read = child(body(false));
    assert.equal(read.status, 0, `the child died (signal? status ${read.status}): ${read.stderr.slice(-500)}`);
    const r = read.parsed!.result as { before: number[]; after: number[] };
    assert.deepEqual(r.after, r.before);
    // Memory-mapped, as asked: the change is seen before the next call, an error naming the file.
    const mapped = child(body(true));
    assert.equal(mapped.status, 0, `the child died (status ${mapped.status}): ${mapped.stderr.slice(-500)}`);
    const m = mapped.parsed!.result as { before: number[]; after: string };
    assert.match(m.after, /model\.safetensors: changed on disk while memory-mapped \(439216 bytes when loaded, 4096 now, modified since\)/);
  });

  it('keeps its numbers when the weight file is rewritten in place with other bytes', async () => {
    const folder = join(dir, 'rewritten');
    mkdirSync(folder);
    copyFileSync(join(QWEN2, 'config.json'), join(folder, 'config.json'));
    const file = join(folder, 'model.safetensors');
    copyFileSync(join(QWEN2, 'model.safetensors'), file);
    using model = await VideoLM.load(folder);
    const before = await scores(model);
    const size = statSync(file).size;
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(size - 8192, 0x7f), 0, size - 8192, 8192);  // the data, not the header
    closeSync(fd);
    assert.deepEqual(await scores(model), before);
    truncateSync(file, 0);
    assert.deepEqual(await scores(model), before);
  });
});
