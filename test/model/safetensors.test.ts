// native/io/safetensors.cc and lib/model/safetensors.ts: reading, writing, sharding, and refusing bad files.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  readSafetensors, readSafetensorsHeader, writeSafetensors, writeSafetensorsFolder,
} from '../../lib/model/safetensors.js';
import { DTYPES, type DType, tensor, type Tensor, type TypedArrayOf } from '../../lib/tensor.js';
import { FIXTURES, removeDir, ROOT, tempDir } from '../helpers.js';

/** A .safetensors file from parts, so tests can break each part on purpose. */
function rawFile(header: object | string, data: Buffer, headerLength?: bigint): Buffer {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(headerLength ?? BigInt(text.length));
  return Buffer.concat([length, text, data]);
}

function sample(dtype: DType, n: number): TypedArrayOf[DType] {
  switch (dtype) {
    case 'float32': return Float32Array.from({ length: n }, (_, i) => i * 0.5 - 3);
    case 'float64': return Float64Array.from({ length: n }, (_, i) => i / 3);
    case 'int64': return BigInt64Array.from({ length: n }, (_, i) => BigInt(i) * -12345678901n);
    case 'uint64': return BigUint64Array.from({ length: n }, (_, i) => BigInt(i) * 12345678901n);
    case 'int32': return Int32Array.from({ length: n }, (_, i) => i * -100000);
    case 'uint32': return Uint32Array.from({ length: n }, (_, i) => i * 100000);
    case 'int16': return Int16Array.from({ length: n }, (_, i) => i * -300);
    case 'int8': return Int8Array.from({ length: n }, (_, i) => i - 5);
    case 'bool': return Uint8Array.from({ length: n }, (_, i) => i % 2);
    case 'uint8': case 'float8_e4m3fn': case 'float8_e5m2': return Uint8Array.from({ length: n }, (_, i) => i * 7);
    case 'float16': case 'bfloat16': case 'uint16': return Uint16Array.from({ length: n }, (_, i) => i * 1000);
  }
}

describe('safetensors', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  it('round-trips every dtype, shapes and metadata', async () => {
    const tensors: Record<string, Tensor> = {};
    DTYPES.forEach((dtype, i) => {
      tensors[`layer.${i}.${dtype}`] = tensor(sample(dtype, 6), [2, 3], dtype);
    });
    tensors['empty'] = tensor(new Float32Array(0), [0, 5]);
    tensors['scalar'] = tensor(new Float32Array([3]), []);
    const path = join(dir, 'all.safetensors');
    await writeSafetensors(path, tensors, { metadata: { format: 'pt', note: 'ünïcode' } });

    const back = await readSafetensors(path);
    assert.deepEqual(back.metadata, { format: 'pt', note: 'ünïcode' });
    assert.deepEqual(Object.keys(back.tensors).sort(), Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      const r = back.tensors[name]!;
      assert.equal(r.dtype, t.dtype, name);
      assert.deepEqual(r.shape, t.shape, name);
      assert.deepEqual(r.toTypedArray(), t.toTypedArray(), name);
    }
  });

  it('lays data out aligned: the header is padded to 8 bytes and larger elements come first', async () => {
    const path = join(dir, 'a.safetensors');
    await writeSafetensors(path, {
      a: tensor(new Uint8Array(3)), b: tensor(new Float64Array(2)), c: tensor(new Float32Array(1)),
    });
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
    assert.deepEqual(header.b.data_offsets, [0, 16]);
    assert.deepEqual(header.c.data_offsets, [16, 20]);
    assert.deepEqual(header.a.data_offsets, [20, 23]);
  });

  it('reads a checkpoint written by the official safetensors library (transformers save_pretrained)', async () => {
    const path = join(FIXTURES, 'hf', 'qwen2', 'model.safetensors');
    const config = JSON.parse(readFileSync(join(FIXTURES, 'hf', 'qwen2', 'config.json'), 'utf8'));
    const header = await readSafetensorsHeader(path);
    const embed = header.tensors.find((t) => t.name === 'model.embed_tokens.weight');
    assert.ok(embed, 'model.embed_tokens.weight is listed');
    assert.deepEqual(embed.shape, [config.vocab_size, config.hidden_size]);
    assert.equal(embed.dtype, 'float32');
    const { tensors } = await readSafetensors(path, { keys: ['model.norm.weight'] });
    assert.deepEqual(Object.keys(tensors), ['model.norm.weight']);
    assert.deepEqual(tensors['model.norm.weight']!.shape, [config.hidden_size]);
    assert.ok(tensors['model.norm.weight']!.toTypedArray().every((x) => Number.isFinite(x)));
  });

  it('reads every dtype from a file the official writer made, with the values it wrote', async () => {
    // test/fixtures/safetensors/reference.safetensors and reference.json come from scripts/fixtures/safetensors_reference.py
    const expected = JSON.parse(readFileSync(join(FIXTURES, 'safetensors', 'reference.json'), 'utf8')) as Record<
      string, { dtype: DType; shape: number[]; bits: string[] }
    >;
    const { tensors } = await readSafetensors(join(FIXTURES, 'safetensors', 'reference.safetensors'));
    assert.deepEqual(Object.keys(tensors).sort(), Object.keys(expected).sort());
    for (const [name, e] of Object.entries(expected)) {
      const t = tensors[name]!;
      assert.equal(t.dtype, e.dtype, name);
      assert.deepEqual(t.shape, e.shape, name);
      const bytes = Buffer.from(t.toTypedArray().buffer as ArrayBuffer);
      assert.equal(bytes.toString('hex'), e.bits.join(''), name);
    }
  });

  it('converts floating-point tensors on read when asked, and leaves integer ones alone', async () => {
    const path = join(dir, 'mixed.safetensors');
    await writeSafetensors(path, {
      w: tensor(new Uint16Array([0x3f80, 0x4000]), [2], 'bfloat16'),
      ids: tensor(new BigInt64Array([1n, 2n])),
    });
    const { tensors } = await readSafetensors(path, { dtype: 'float32' });
    assert.equal(tensors.w!.dtype, 'float32');
    assert.deepEqual(Array.from(tensors.w!.toTypedArray() as Float32Array), [1, 2]);
    assert.equal(tensors.ids!.dtype, 'int64');
  });

  it('names a missing key', async () => {
    const path = join(dir, 'x.safetensors');
    await writeSafetensors(path, { a: tensor(new Float32Array(1)) });
    await assert.rejects(readSafetensors(path, { keys: ['b'] }), /x\.safetensors: has no tensor 'b'/);
  });

  it('refuses bad write input before writing anything', async () => {
    const path = join(dir, 'bad.safetensors');
    const t = tensor(new Float32Array(1));
    await assert.rejects(writeSafetensors(path, { __metadata__: t }), /'__metadata__' is reserved/);
    const gone = tensor(new Float32Array(1));
    gone.dispose();
    await assert.rejects(writeSafetensors(path, { gone }), /Tensor was disposed/);
    await assert.rejects(writeSafetensors(path, { t }, { metadata: { n: 1 as unknown as string } }), {
      code: 'ERR_TPO_ARGUMENT', message: /writeSafetensors: options: metadata\.n/,
    });
    await assert.rejects(writeSafetensors(join(dir, 'no', 'such', 'dir', 'f.safetensors'), { t }), /cannot create temporary file/);
    assert.deepEqual(readdirSync(dir), []);
  });

  describe('refuses a corrupt file with a message naming the file and the fault', () => {
    const f32 = (n: number) => Buffer.alloc(4 * n);
    const cases: { name: string; bytes: () => Buffer; error: RegExp }[] = [
      { name: 'empty file', bytes: () => Buffer.alloc(0), error: /too short for a safetensors file \(0 bytes/ },
      { name: 'header length past the end of the file', bytes: () => rawFile({}, Buffer.alloc(0), 4096n), error: /header length 4096 runs past the end of the file/ },
      { name: 'absurd header length', bytes: () => rawFile({}, Buffer.alloc(0), 1n << 62n), error: /exceeds the 100 MB limit/ },
      { name: 'header not JSON', bytes: () => rawFile('{"a": [1, 2', f32(0)), error: /header is not valid JSON/ },
      { name: 'header not an object', bytes: () => rawFile('[1, 2]', f32(0)), error: /does not start with '\{'/ },
      { name: 'unknown dtype', bytes: () => rawFile({ w: { dtype: 'F33', shape: [1], data_offsets: [0, 4] } }, f32(1)), error: /tensor 'w' has unknown dtype 'F33'/ },
      { name: 'offset past the end (truncated data)', bytes: () => rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(2)), error: /tensor 'w': data_offsets end 16 lies past the end of the data \(8 bytes\): truncated file\?/ },
      { name: 'overlapping ranges', bytes: () => rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32(3)), error: /tensors 'a' and 'b' overlap/ },
      { name: 'a hole between tensors', bytes: () => rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, f32(3)), error: /bytes 4 to 8 of the data belong to no tensor/ },
      { name: 'shape and offsets disagree', bytes: () => rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(2)), error: /tensor 'w': F32 \[3\] needs 12 bytes but data_offsets span 8/ },
      { name: 'reversed offsets', bytes: () => rawFile({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, f32(2)), error: /are reversed/ },
      { name: 'negative dimension', bytes: () => rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32(1)), error: /shape entries must be non-negative integers/ },
      { name: 'shape overflowing 64 bits', bytes: () => rawFile({ w: { dtype: 'F32', shape: [4294967296, 4294967296, 16], data_offsets: [0, 4] } }, f32(1)), error: /shape overflows/ },
      { name: 'missing data_offsets', bytes: () => rawFile({ w: { dtype: 'F32', shape: [1] } }, f32(1)), error: /tensor 'w' needs 'data_offsets'/ },
      { name: 'non-string metadata', bytes: () => rawFile({ __metadata__: { n: 1 } }, f32(0)), error: /__metadata__\['n'\] is not a string/ },
      { name: 'a header nested a million deep', bytes: () => rawFile(`{"a":${'['.repeat(1e6)}${']'.repeat(1e6)}}`, f32(0)), error: /tensor 'a' is not an object/ },
      { name: 'trailing bytes no tensor covers', bytes: () => rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(2)), error: /holds 8 bytes but the tensors cover 4/ },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const path = join(dir, 'bad.safetensors');
        writeFileSync(path, c.bytes());
        for (const read of [() => readSafetensors(path), () => readSafetensorsHeader(path)]) {
          await assert.rejects(read(), (error: Error) => {
            assert.ok(error.message.includes(path), `message names the file: ${error.message}`);
            assert.match(error.message, c.error);
            return true;
          });
        }
      });
    }

    it('every truncation of a valid file', async () => {
      const good = join(dir, 'good.safetensors');
      await writeSafetensors(good, { a: tensor(new Float32Array(5)), b: tensor(new BigInt64Array(3)) }, { metadata: { k: 'v' } });
      const bytes = readFileSync(good);
      const cut = join(dir, 'cut.safetensors');
      for (let n = 0; n < bytes.length; n++) {
        writeFileSync(cut, bytes.subarray(0, n));
        await assert.rejects(readSafetensors(cut), /cut\.safetensors: /, `a file cut to ${n} bytes`);
      }
    });
  });

  describe('sharded checkpoints', () => {
    const weights = () => ({
      'model.embed_tokens.weight': tensor(Float32Array.from({ length: 64 }, (_, i) => i), [16, 4]),
      'model.layers.0.mlp.weight': tensor(Float32Array.from({ length: 32 }, (_, i) => -i), [8, 4]),
      'model.layers.1.mlp.weight': tensor(Float32Array.from({ length: 32 }, (_, i) => i * 2), [8, 4]),
      'lm_head.weight': tensor(Float32Array.from({ length: 64 }, (_, i) => i / 2), [16, 4]),
    });

    it('writes one model.safetensors when everything fits', async () => {
      assert.deepEqual(await writeSafetensorsFolder(dir, weights()), ['model.safetensors']);
      const { tensors } = await readSafetensors(dir);
      assert.equal(Object.keys(tensors).length, 4);
    });

    it('writes shards and an index as transformers does, and reads them back from the folder or the index', async () => {
      const files = await writeSafetensorsFolder(dir, weights(), { maxShardSize: '256B', metadata: { format: 'pt' } });
      assert.deepEqual(files, [
        'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors',
        'model.safetensors.index.json',
      ]);
      const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
      assert.equal(index.metadata.total_size, 4 * (64 + 32 + 32 + 64));
      assert.equal(index.weight_map['lm_head.weight'], 'model-00003-of-00003.safetensors');
      for (const from of [dir, join(dir, 'model.safetensors.index.json')]) {
        const { tensors, metadata } = await readSafetensors(from);
        assert.equal(metadata.format, 'pt');
        const original = weights();
        for (const [name, t] of Object.entries(original)) assert.deepEqual(tensors[name]!.toTypedArray(), t.toTypedArray(), name);
      }
      const header = await readSafetensorsHeader(dir);
      assert.equal(header.tensors.find((t) => t.name === 'model.embed_tokens.weight')!.file, join(dir, 'model-00001-of-00003.safetensors'));
    });

    it('refuses an index that names a missing shard, a tensor a shard lacks, or a path outside the folder', async () => {
      await writeSafetensorsFolder(dir, weights(), { maxShardSize: '256B' });
      const indexPath = join(dir, 'model.safetensors.index.json');
      const index = JSON.parse(readFileSync(indexPath, 'utf8'));
      const variants: [Record<string, string>, RegExp][] = [
        [{ ...index.weight_map, extra: 'model-00009-of-00009.safetensors' }, /weight_map\['extra'\] names 'model-00009-of-00009.safetensors', which does not exist/],
        [{ ...index.weight_map, extra: 'model-00001-of-00003.safetensors' }, /weight_map\['extra'\] names 'model-00001-of-00003.safetensors', which has no such tensor/],
        [{ ...index.weight_map, extra: '../secret.safetensors' }, /is not a file name in the same folder/],
      ];
      for (const [weightMap, error] of variants) {
        writeFileSync(indexPath, JSON.stringify({ ...index, weight_map: weightMap }));
        await assert.rejects(readSafetensors(dir), (e: Error) => e.message.includes(indexPath) && error.test(e.message));
      }
      writeFileSync(indexPath, '{"weight_map": ');
      await assert.rejects(readSafetensors(dir), /model\.safetensors\.index\.json: not valid JSON/);
      removeDir(dir);
      await assert.rejects(readSafetensors(dir), /cannot open|neither/);
    });

    it('parses shard sizes as transformers spells them', async () => {
      await assert.rejects(async () => writeSafetensorsFolder(dir, weights(), { maxShardSize: '5 parsecs' }), {
        code: 'ERR_TPO_ARGUMENT', message: /maxShardSize: '5 parsecs' is not a size/,
      });
      const files = await writeSafetensorsFolder(dir, weights(), { maxShardSize: '0.5KiB' });
      assert.equal(files.length, 2 + 1);
    });
  });

  it('replaces a file atomically: a writer killed mid-write leaves the old file whole', async function () {
    this.timeout(120_000);
    const path = join(dir, 'model.safetensors');
    await writeSafetensors(path, { old: tensor(new Float32Array([1, 2, 3])) });
    const before = readFileSync(path);
    // A child process writes 1 GiB over the same path; we kill it as soon as its temporary file appears.
    const script = `
      const { tensor } = await import(${JSON.stringify(join(ROOT, 'dist', 'lib', 'tensor.js'))});
      const { writeSafetensors } = await import(${JSON.stringify(join(ROOT, 'dist', 'lib', 'model', 'safetensors.js'))});
      const big = tensor(new Uint8Array(2 ** 27));
      const tensors = { a: big, b: big.reshape([2 ** 27]), c: big.to('int16'), d: big.to('float32') };
      process.stdout.write('writing\\n');
      await writeSafetensors(${JSON.stringify(path)}, tensors);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    const deadline = Date.now() + 60_000;
    while (!readdirSync(dir).some((f) => f.includes('.tmp-')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    // The target holds the old file, whole: the 1 GiB write was still going when it was killed.
    assert.deepEqual(readFileSync(path), before);
    const { tensors } = await readSafetensors(path);
    assert.deepEqual(Array.from(tensors.old!.toTypedArray() as Float32Array), [1, 2, 3]);
  });

  it('memory-mapped, reads without copying: a tensor of a large file costs no memory until touched', async () => {
    const path = join(dir, 'big.safetensors');
    await writeSafetensors(path, { w: tensor(new Uint8Array(256 * 2 ** 20)) });
    const rssBefore = process.memoryUsage().rss;
    const { tensors } = await readSafetensors(path, { mmap: true });
    const rssAfter = process.memoryUsage().rss;
    assert.deepEqual(tensors.w!.shape, [256 * 2 ** 20]);
    assert.ok(rssAfter - rssBefore < 64 * 2 ** 20, `reading grew RSS by ${(rssAfter - rssBefore) / 2 ** 20} MiB`);
  });

  it('copies the shipped fixtures unchanged', () => {
    // Guards the copy in test/fixtures against edits: same bytes as ../shared where that exists.
    const shared = join(ROOT, '..', 'shared', 'fixtures', 'hf', 'qwen2', 'model.safetensors');
    if (!existsSync(shared)) return;
    assert.ok(readFileSync(shared).equals(readFileSync(join(FIXTURES, 'hf', 'qwen2', 'model.safetensors'))));
  });
});
