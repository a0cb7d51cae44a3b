// native/binding/tensor.cc and lib/tensor.ts: the Tensor handle across the boundary.
import assert from 'node:assert/strict';

import { DTYPES, type DType, isTensor, tensor, tensorMemory, type TypedArrayOf } from '../../lib/tensor.js';
import { native } from '../../lib/native.js';

// Sample data for every dtype, with values at the edges of each type.
const SAMPLES: { [D in DType]: TypedArrayOf[D] } = {
  float32: new Float32Array([0, -1.5, 3.25e38, Number.NEGATIVE_INFINITY, 1e-40, 7]),
  float64: new Float64Array([0, -1.5, 1.7e308, Number.POSITIVE_INFINITY, 5e-324, 7]),
  float16: new Uint16Array([0x0000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00]), // 0, 1, -2, 65504, tiny, inf
  bfloat16: new Uint16Array([0x0000, 0x3f80, 0xc000, 0x7f7f, 0x0001, 0xff80]), // 0, 1, -2, max, tiny, -inf
  int64: new BigInt64Array([0n, -1n, 9223372036854775807n, -9223372036854775808n, 42n, 7n]),
  int32: new Int32Array([0, -1, 2147483647, -2147483648, 42, 7]),
  int16: new Int16Array([0, -1, 32767, -32768, 42, 7]),
  int8: new Int8Array([0, -1, 127, -128, 42, 7]),
  uint8: new Uint8Array([0, 1, 255, 128, 42, 7]),
  bool: new Uint8Array([0, 1, 1, 0, 0, 1]),
  uint16: new Uint16Array([0, 1, 65535, 32768, 42, 7]),
  uint32: new Uint32Array([0, 1, 4294967295, 2147483648, 42, 7]),
  uint64: new BigUint64Array([0n, 1n, 18446744073709551615n, 9223372036854775808n, 42n, 7n]),
  float8_e4m3fn: new Uint8Array([0x00, 0x38, 0xb8, 0x7e, 0x01, 0x40]), // 0, 1, -1, 448, tiny, 2
  float8_e5m2: new Uint8Array([0x00, 0x3c, 0xbc, 0x7b, 0x01, 0x40]), // 0, 1, -1, 57344, tiny, 2
};

describe('Tensor', () => {
  for (const dtype of DTYPES) {
    it(`round-trips ${dtype} through a TypedArray`, () => {
      const data = SAMPLES[dtype];
      const t = tensor(data, [2, 3], dtype);
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.shape, [2, 3]);
      assert.equal(t.numel, 6);
      assert.equal(t.device, 'cpu');
      const back = t.toTypedArray();
      assert.equal(back.constructor, data.constructor);
      assert.deepEqual(back, data);
      t.dispose();
    });
  }

  it('reads half-precision bits the way IEEE and bfloat16 define them', () => {
    const f16 = tensor(SAMPLES.float16, [6], 'float16').to('float32').toTypedArray() as Float32Array;
    assert.deepEqual(Array.from(f16.slice(0, 4)), [0, 1, -2, 65504]);
    assert.equal(f16[5], Number.POSITIVE_INFINITY);
    const bf16 = tensor(SAMPLES.bfloat16, [6], 'bfloat16').to('float32').toTypedArray() as Float32Array;
    assert.deepEqual(Array.from(bf16.slice(0, 3)), [0, 1, -2]);
    assert.equal(bf16[5], Number.NEGATIVE_INFINITY);
    const e4m3 = tensor(SAMPLES.float8_e4m3fn, [6], 'float8_e4m3fn').to('float32').toTypedArray() as Float32Array;
    assert.deepEqual(Array.from(e4m3.slice(0, 4)), [0, 1, -1, 448]);
  });

  it('stores any non-zero byte of a bool tensor as true', () => {
    const t = tensor(new Uint8Array([0, 2, 255]), [3], 'bool');
    assert.deepEqual(Array.from(t.toTypedArray() as Uint8Array), [0, 1, 1]);
  });

  it('takes the dtype from the array when none is given, and a 1-D shape by default', () => {
    assert.equal(tensor(new Float64Array(4)).dtype, 'float64');
    assert.equal(tensor(new BigInt64Array(4)).dtype, 'int64');
    assert.deepEqual(tensor(new Int32Array(5)).shape, [5]);
  });

  it('copies its input: changing the array afterwards does not change the tensor', () => {
    const data = new Float32Array([1, 2, 3]);
    const t = tensor(data);
    data[0] = 100;
    assert.equal(t.toTypedArray()[0], 1);
  });

  it('handles empty and scalar shapes', () => {
    assert.deepEqual(tensor(new Float32Array(0), [0, 4]).shape, [0, 4]);
    const scalar = tensor(new Float32Array([5]), []);
    assert.deepEqual(scalar.shape, []);
    assert.deepEqual(Array.from(scalar.toTypedArray() as Float32Array), [5]);
  });

  it('reshapes and converts', () => {
    const t = tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
    assert.deepEqual(t.reshape([3, 2]).shape, [3, 2]);
    assert.deepEqual(Array.from(t.to('int32').toTypedArray() as Int32Array), [1, 2, 3, 4, 5, 6]);
    assert.equal(String(t), 'Tensor(float32, [2, 3], cpu)');
  });

  it('selects slices along a dimension in the order given, repeats allowed (indexSelect)', () => {
    const t = tensor(new Int32Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), [4, 3]);
    assert.deepEqual(Array.from(t.indexSelect(0, [3, 0, 0]).toTypedArray() as Int32Array), [9, 10, 11, 0, 1, 2, 0, 1, 2]);
    assert.deepEqual(t.indexSelect(0, new Int32Array([2, 1])).shape, [2, 3]);
    assert.deepEqual(Array.from(t.indexSelect(-1, [2]).toTypedArray() as Int32Array), [2, 5, 8, 11]);
    assert.deepEqual(t.indexSelect(0, []).shape, [0, 3]);
    assert.throws(() => t.indexSelect(0, [4]), { code: 'ERR_TPO_ARGUMENT', message: /indices\[0\] = 4 is outside \[0, 4\) of dim 0/ });
    assert.throws(() => t.indexSelect(2, [0]), { code: 'ERR_TPO_ARGUMENT', message: /dim must be an integer in \[-2, 2\)/ });
    assert.throws(() => t.indexSelect(0, [0.5]), { code: 'ERR_TPO_ARGUMENT', message: /indices\[0\] must be an integer/ });
  });

  it('rejects a shape that does not match the data, naming both counts', () => {
    assert.throws(() => tensor(new Float32Array(6), [4]), {
      name: 'TypeError', code: 'ERR_TPO_ARGUMENT', message: /shape \[4\] holds 4 elements but the array has 6/,
    });
    assert.throws(() => tensor(new Float32Array(6), [-1, 6]), { code: 'ERR_TPO_ARGUMENT', message: /shape/ });
  });

  it('rejects a dtype the array cannot hold', () => {
    assert.throws(() => tensor(new Float32Array(2) as never, [2], 'int32'), {
      code: 'ERR_TPO_ARGUMENT', message: /dtype int32 takes a Int32Array, got a Float32Array/,
    });
    assert.throws(() => tensor(new Float32Array(2), [2], 'complex64' as DType), { code: 'ERR_TPO_ARGUMENT', message: /dtype/ });
  });

  it('cannot be constructed from JS, and is recognised by isTensor', () => {
    const Ctor = native().Tensor as unknown as new () => unknown;
    assert.throws(() => new Ctor(), { name: 'TypeError', message: /cannot be constructed directly/ });
    assert.ok(isTensor(tensor(new Float32Array(1))));
    assert.ok(!isTensor({ shape: [1] }));
  });

  it('is unusable after dispose(), and dispose() twice is harmless', () => {
    const t = tensor(new Float32Array(3));
    t.dispose();
    t.dispose();
    assert.equal(t.disposed, true);
    assert.throws(() => t.toTypedArray(), { message: /Tensor was disposed/ });
    assert.throws(() => t.shape, { message: /Tensor was disposed/ });
    assert.equal(String(t), 'Tensor(disposed)');
  });

  it('is disposed at the end of a `using` block', () => {
    let outside;
    {
      using t = tensor(new Float32Array(3));
      outside = t;
      assert.equal(t.disposed, false);
    }
    assert.equal(outside.disposed, true);
  });

  it('reports the native memory it holds to V8 and gives it back on dispose', () => {
    const bytes = 64 * 2 ** 20;
    const before = tensorMemory();
    const t = tensor(new Uint8Array(bytes));
    const during = tensorMemory();
    t.dispose();
    const after = tensorMemory();
    assert.equal(during.tensors - before.tensors, 1);
    assert.equal(during.bytes - before.bytes, bytes);
    assert.deepEqual([after.tensors, after.bytes], [before.tensors, before.bytes]);
    // V8's own count moves by the same amount (it also counts the Uint8Array, until that is collected).
    assert.ok(during.v8ExternalBytes - before.v8ExternalBytes >= 2 * bytes);
    assert.equal(during.v8ExternalBytes - after.v8ExternalBytes, bytes);
  });
});
