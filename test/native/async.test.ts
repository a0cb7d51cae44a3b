// native/binding/async.h: slow work runs off the event loop and settles a Promise.
import assert from 'node:assert/strict';

import { benchMatmul, runtimeInfo, setNumThreads } from '../../lib/runtime.js';

describe('async native calls', () => {
  it('keep the event loop turning while they run', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const started = Date.now();
    try {
      const result = await benchMatmul({ size: 256, seconds: 1 });
      assert.ok(result.iterations > 0 && result.gflops > 0);
    } finally {
      clearInterval(timer);
    }
    const elapsed = Date.now() - started;
    // A blocked loop would see at most one tick; a free one sees about elapsed/10. Ask for a third of that.
    assert.ok(ticks >= elapsed / 30, `only ${ticks} timer ticks in ${elapsed} ms`);
  });

  it('run several at once', async () => {
    const results = await Promise.all([1, 2, 3].map(() => benchMatmul({ size: 64, seconds: 0.1 })));
    assert.equal(results.length, 3);
    for (const r of results) assert.equal(r.size, 64);
  });

  it('run with the thread count set from JS, although OpenMP keeps it per thread', async () => {
    const cores = runtimeInfo().threads.cores;
    try {
      setNumThreads(1);
      assert.equal((await benchMatmul({ size: 8, seconds: 0 })).threads, 1);
      setNumThreads(cores);
      assert.equal((await benchMatmul({ size: 8, seconds: 0 })).threads, cores);
    } finally {
      setNumThreads(cores);
    }
  });

  it('validate their options before leaving the main thread', () => {
    assert.throws(() => benchMatmul({ size: 0 }), { code: 'ERR_TPO_ARGUMENT', message: /benchMatmul: size/ });
  });
});
