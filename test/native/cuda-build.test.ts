// The CUDA flavour of the addon (scripts/build-cuda.sh) on this machine, GPU or not: it must load and work on the CPU.
// Runs only where a CUDA build is present (build-cuda/Release/tpo.node, or TPO_CUDA_ADDON naming one); CI has none,
// so it costs nothing there. A subset of the CPU suite then runs in a child mocha with TPO_ADDON set to it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { LIBTORCH_CUDA_VERSION } from '../../lib/libtorch.js';
import { ROOT, runNode } from '../helpers.js';

const ADDON = process.env.TPO_CUDA_ADDON ?? join(ROOT, 'build-cuda', 'Release', 'tpo.node');

/**
 * The CPU tests the CUDA build runs: tensors, the model's parity, inference, training, bf16, doctor, the planner's
 * counts, and the process group (Gloo between processes; NCCL's refusal without a GPU, or its 1-rank collectives).
 */
const SUBSET = [
  'native/tensor.test.js', 'native/errors.test.js', 'model/video-lm.test.js', 'model/inference.test.js', 'model/bf16.test.js',
  'train/preference.test.js', 'train/optimizer.test.js', 'train/losses.test.js', 'cli/doctor.test.js', 'dist/group.test.js',
];

describe('the CUDA build', function () {
  this.timeout(3_600_000);
  before(function () {
    if (!existsSync(ADDON) || process.env.TPO_ADDON) this.skip();
  });

  it('loads without a GPU, knows it is a CUDA build with NCCL, and has libtorch_cuda in the process', () => {
    const r = runNode(`
      import { readFileSync } from 'node:fs';
      const { native } = await import(${JSON.stringify(join(ROOT, 'dist', 'lib', 'native.js'))});
      const info = native().runtimeInfo();
      const maps = readFileSync('/proc/self/maps', 'utf8');
      const backends = native().distBackends();
      console.log(JSON.stringify({ info, cudaLoaded: maps.includes('libtorch_cuda.so'), smoke: native().smokeTest('cpu'), backends }));`,
    { env: { ...process.env, TPO_ADDON: ADDON } });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(out.info.torchVersion, LIBTORCH_CUDA_VERSION);
    assert.equal(out.info.cuda.built, true);
    assert.ok(out.info.cuda.runtimeVersion >= 12000, `CUDA runtime ${out.info.cuda.runtimeVersion}`);
    assert.equal(out.cudaLoaded, true, 'libtorch_cuda.so is mapped (linked with --no-as-needed)');
    assert.equal(out.smoke, 0);
    // scripts/build-cuda.sh unpacks NCCL's and CUDA's headers beside the libtorch: its build has both backends.
    assert.deepEqual(out.backends, { gloo: true, nccl: true });
    if (!existsSync('/proc/driver/nvidia/version')) assert.equal(out.info.cuda.available, false);
  });

  it('the loader: the real CUDA prebuild is tested in a child first, and without a GPU the error says what is missing', function () {
    if (!existsSync(join(ROOT, 'prebuilds', 'linux-x64', 'cuda', 'tpo.node')) || existsSync('/proc/driver/nvidia/version')) this.skip();
    const r = runNode(`
      const { loadNative } = await import(${JSON.stringify(join(ROOT, 'dist', 'lib', 'native.js'))});
      try { loadNative(${JSON.stringify(ROOT)}); console.log(JSON.stringify({ loaded: true })); }
      catch (error) { console.log(JSON.stringify({ error: error.message, code: error.code })); }`,
    { env: { ...process.env, TPO_ADDON: undefined, TPO_VARIANT: 'cuda' } });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(out.code, 'ERR_TPO_NATIVE_LOAD');
    assert.match(out.error, /prebuild linux-x64\/cuda: smokeTest\(cuda\): libtorch sees no CUDA device/);
    assert.match(out.error, /Fix: the CUDA prebuild needs an NVIDIA GPU with a driver recent enough for CUDA 13/);
  });

  it('passes the CPU tests', () => {
    const files = SUBSET.map((f) => join(ROOT, 'dist', 'test', f));
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js'), '--no-config', '--timeout', '600000',
      '--reporter', 'dot', ...files], { encoding: 'utf8', env: { ...process.env, TPO_ADDON: ADDON }, timeout: 3_500_000 });
    assert.equal(r.status, 0, `${r.stdout.slice(-6000)}\n${r.stderr.slice(-3000)}`);
    assert.match(r.stdout, /passing/);
    assert.doesNotMatch(r.stdout, /failing/);
  });
});
