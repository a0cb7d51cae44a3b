// native/binding/errors.cc: every C++ exception becomes a short JS Error with context and a code.
import assert from 'node:assert/strict';

import { native } from '../../lib/native.js';
import { readSafetensors } from '../../lib/model/safetensors.js';
import { tensor } from '../../lib/tensor.js';

describe('errors from native code', () => {
  it('a libtorch error is a JS Error with its message, no backtrace, and code ERR_TPO_TORCH', () => {
    const t = tensor(new Float32Array(6), [2, 3]);
    let caught: unknown;
    try {
      t.reshape([4, 5]);
    } catch (error) {
      caught = error;
    }
    assert.ok(caught instanceof Error);
    assert.equal(caught.message, "Tensor.reshape: shape '[4, 5]' is invalid for input of size 6");
    assert.equal((caught as { code?: string }).code, 'ERR_TPO_TORCH');
  });

  it('an error on the worker thread rejects the Promise with context', async () => {
    await assert.rejects(readSafetensors('/nonexistent/model.safetensors'), (error: Error & { code?: string }) => {
      assert.match(error.message, /^safetensorsRead: \/nonexistent\/model\.safetensors: cannot open: No such file/);
      assert.equal(error.code, 'ERR_TPO_NATIVE');
      assert.ok(error.message.length < 200 && !error.message.includes('Exception raised from'));
      return true;
    });
  });

  it('a wrong argument type is a TypeError with code ERR_TPO_ARGUMENT', () => {
    assert.throws(() => native().tensorFromTypedArray([1, 2] as never, [2]), {
      name: 'TypeError', code: 'ERR_TPO_ARGUMENT', message: 'tensorFromTypedArray: data must be a TypedArray',
    });
    assert.throws(() => native().safetensorsWrite('/tmp/x.safetensors', { w: 42 } as never), {
      code: 'ERR_TPO_ARGUMENT', message: "safetensorsWrite: tensors['w'] must be a Tensor",
    });
  });
});
