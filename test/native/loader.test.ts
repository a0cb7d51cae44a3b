// lib/native.ts: which addon loads, and what the error says when none can.
// Each case runs in a child process: a process loads at most one libtorch.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { findLibtorch, LIBTORCH_VERSION } from '../../lib/libtorch.js';
import { prebuildDir } from '../../lib/native.js';
import { removeDir, ROOT, runNode, tempDir } from '../helpers.js';

const NATIVE = JSON.stringify(join(ROOT, 'dist', 'lib', 'native.js'));

/** Loads the addon from `root` in a child process; returns what loaded, or the error's message. */
function loadIn(root: string, env: Record<string, string | undefined>) {
  const code = `
    const { loadNative } = await import(${NATIVE});
    try {
      const l = loadNative(${JSON.stringify(root)});
      const info = l.addon.runtimeInfo();
      console.log(JSON.stringify({ kind: l.kind, path: l.path, source: l.libtorch?.source, libtorchPath: info.libtorchPath, variant: l.variant, skipped: l.skipped }));
    } catch (error) {
      console.log(JSON.stringify({ error: error.message, code: error.code, name: error.name }));
    }`;
  const r = runNode(code, { env: { ...process.env, LIBTORCH: undefined, TPO_ADDON: undefined, TPO_VARIANT: undefined, ...env } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    kind?: string; path?: string; source?: string; libtorchPath?: string; error?: string; code?: string; name?: string;
    variant?: string; skipped?: { candidate: string; reason: string }[];
  };
}

describe('native loader', () => {
  let dir: string;
  let emptyCache: string;
  let libtorch: string; // the libtorch this checkout was built against

  before(() => {
    if (!existsSync(join(prebuildDir(ROOT), 'cpu', 'tpo.node'))) {
      throw new Error('prebuilds/ is empty: run `npm run build:prebuild` (npm test does it first)');
    }
    const found = findLibtorch(LIBTORCH_VERSION);
    assert.ok(found, `libtorch ${LIBTORCH_VERSION} is installed (scripts/setup.sh)`);
    libtorch = found.dir;
  });
  beforeEach(() => {
    dir = tempDir();
    emptyCache = join(dir, 'cache');
    mkdirSync(emptyCache);
  });
  afterEach(() => removeDir(dir));

  const withPrebuild = () => {
    const root = join(dir, 'pkg');
    cpSync(join(ROOT, 'prebuilds'), join(root, 'prebuilds'), { recursive: true });
    return root;
  };
  // No LIBTORCH, an empty cache, and no python3 on PATH: no libtorch to be found.
  const nothing = () => ({ TPO_CACHE_DIR: emptyCache, PATH: '/nonexistent' });

  it('loads the source build of a checkout', () => {
    const r = loadIn(ROOT, {});
    assert.equal(r.kind, 'source', r.error);
    assert.equal(r.path, join(ROOT, 'build', 'Release', 'tpo.node'));
  });

  it('loads a prebuild on the libtorch named by LIBTORCH, preloaded before the addon', () => {
    const r = loadIn(withPrebuild(), { ...nothing(), LIBTORCH: libtorch });
    assert.equal(r.kind, 'prebuild', r.error);
    assert.equal(r.source, 'LIBTORCH');
    assert.equal(r.libtorchPath, join(libtorch, 'lib', 'libtorch_cpu.so'));
  });

  it('loads a prebuild on the libtorch in the setup cache', () => {
    const cache = join(dir, 'cache2');
    mkdirSync(cache);
    symlinkSync(libtorch, join(cache, 'libtorch-2.13.0-cpu'));
    const r = loadIn(withPrebuild(), { TPO_CACHE_DIR: cache, PATH: '/nonexistent' });
    assert.equal(r.kind, 'prebuild', r.error);
    assert.equal(r.source, 'cache');
    assert.equal(r.libtorchPath, join(cache, 'libtorch-2.13.0-cpu', 'lib', 'libtorch_cpu.so'));
  });

  it('says libtorch is missing, and how to get it, when a prebuild has none to run on', () => {
    const r = loadIn(withPrebuild(), nothing());
    assert.equal(r.code, 'ERR_TPO_NATIVE_LOAD');
    assert.match(r.error!, /source build \(build\/Release\): not built/);
    assert.match(r.error!, /prebuild linux-x64\/cpu: needs libtorch 2\.13\.0; none found/);
    assert.match(r.error!, /Fix: run `bash .*scripts\/setup\.sh --libtorch-only`.*or set LIBTORCH/);
  });

  it('says which libtorch versions it found when none is the one the prebuild needs', () => {
    const fake = join(dir, 'libtorch-2.12.0');
    mkdirSync(join(fake, 'lib'), { recursive: true });
    writeFileSync(join(fake, 'lib', 'libtorch_cpu.so'), '');
    writeFileSync(join(fake, 'build-version'), '2.12.0+cpu\n');
    const r = loadIn(withPrebuild(), { ...nothing(), LIBTORCH: fake });
    assert.match(r.error!, new RegExp(`needs libtorch 2\\.13\\.0; found only: 2\\.12\\.0 cpu at ${fake} \\[LIBTORCH\\]`));
  });

  it('names the manifest field that is wrong', () => {
    const root = withPrebuild();
    writeFileSync(join(prebuildDir(root), 'cpu', 'manifest.json'), JSON.stringify({ package: '0.1.0', torch: 'two' }));
    const r = loadIn(root, { LIBTORCH: libtorch });
    assert.match(r.error!, /manifest\.json: torch: .*variant: /);
  });

  it('says there is no prebuild for this platform when neither kind of addon exists', () => {
    const r = loadIn(join(dir, 'empty'), nothing());
    assert.match(r.error!, /prebuilds\/linux-x64: no prebuilt addon for this platform/);
    assert.match(r.error!, /Fix: build from source: `bash .*setup\.sh`/);
  });

  it('uses TPO_ADDON strictly, and says so when it does not load', () => {
    const r = loadIn(ROOT, { TPO_ADDON: join(dir, 'missing.node') });
    assert.match(r.error!, /TPO_ADDON=.*missing\.node: Cannot find module/);
    assert.match(r.error!, /Fix: point TPO_ADDON at a built tpo\.node, or unset it/);
    const ok = loadIn(ROOT, { TPO_ADDON: join(ROOT, 'build', 'Release', 'tpo.node') });
    assert.equal(ok.kind, 'override');
  });

  it('builds against the libtorch tpo is tested with, not a newer CUDA one beside it, unless asked', () => {
    const fake = (name: string, version: string, cuda: boolean) => {
      const d = join(emptyCache, name);
      mkdirSync(join(d, 'lib'), { recursive: true });
      writeFileSync(join(d, 'lib', 'libtorch_cpu.so'), '');
      if (cuda) writeFileSync(join(d, 'lib', 'libtorch_cuda.so'), '');
      writeFileSync(join(d, 'build-version'), `${version}\n`);
      return d;
    };
    const cpu = fake(`libtorch-${LIBTORCH_VERSION}-cpu`, LIBTORCH_VERSION, false);
    const cuda = fake('libtorch-2.99.0-cuda', '2.99.0+cu130', true);
    const saved = { cache: process.env.TPO_CACHE_DIR, libtorch: process.env.LIBTORCH };
    try {
      process.env.TPO_CACHE_DIR = emptyCache;
      delete process.env.LIBTORCH;
      assert.equal(findLibtorch()?.dir, cpu);
      assert.equal(findLibtorch('2.99.0')?.dir, cuda);
      assert.equal(findLibtorch('2.99.0')?.variant, 'cuda');
      process.env.LIBTORCH = cuda;
      assert.equal(findLibtorch()?.dir, cuda);
    } finally {
      for (const [key, value] of [['TPO_CACHE_DIR', saved.cache], ['LIBTORCH', saved.libtorch]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });

  // A CUDA prebuild beside the CPU one: the CPU addon under a cuda/ manifest (what the loader reads to choose).
  const withCudaPrebuild = (torch = '2.14.1') => {
    const root = withPrebuild();
    const cuda = join(prebuildDir(root), 'cuda');
    cpSync(join(prebuildDir(root), 'cpu'), cuda, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(cuda, 'manifest.json'), 'utf8'));
    writeFileSync(join(cuda, 'manifest.json'), JSON.stringify({ ...manifest, torch, variant: 'cuda' }));
    return root;
  };

  it('passes over the CUDA prebuild without an NVIDIA driver and says so', () => {
    const r = loadIn(withCudaPrebuild(), { ...nothing(), LIBTORCH: libtorch });
    assert.equal(r.kind, 'prebuild', r.error);
    assert.equal(r.variant, 'cpu');
    assert.deepEqual(r.skipped!.find((a) => a.candidate === 'prebuild linux-x64/cuda'),
      { candidate: 'prebuild linux-x64/cuda', reason: 'no NVIDIA driver (/proc/driver/nvidia/version)' });
  });

  it('says a CUDA libtorch is missing, and how to get one, when the CUDA prebuild is asked for', () => {
    const r = loadIn(withCudaPrebuild(), { ...nothing(), LIBTORCH: libtorch, TPO_VARIANT: 'cuda' });
    assert.equal(r.code, 'ERR_TPO_NATIVE_LOAD');
    assert.match(r.error!, /prebuild linux-x64\/cuda: needs libtorch 2\.14\.1 with CUDA; found only: 2\.13\.0 cpu at /);
    assert.match(r.error!, /Fix: for the CUDA prebuild: `bash .*scripts\/build-cuda\.sh --unpack-only`/);
  });

  it('tests a prebuild in a child process first: a broken one is reported and the process lives on', () => {
    const root = withPrebuild();
    writeFileSync(join(prebuildDir(root), 'cpu', 'tpo.node'), 'not an ELF file');
    const r = loadIn(root, { ...nothing(), LIBTORCH: libtorch });
    assert.equal(r.code, 'ERR_TPO_NATIVE_LOAD');
    assert.match(r.error!, /prebuild linux-x64\/cpu: .*(invalid ELF header|file too short)/);
  });

  it('remembers a passing child test in the cache, per addon file', () => {
    const root = withPrebuild();
    const cache = join(dir, 'cache3');
    mkdirSync(cache);
    assert.equal(loadIn(root, { TPO_CACHE_DIR: cache, PATH: '/nonexistent', LIBTORCH: libtorch }).kind, 'prebuild');
    const markers = readdirSync(join(cache, 'addon-tests'));
    assert.equal(markers.length, 1);
    assert.equal(loadIn(root, { TPO_CACHE_DIR: cache, PATH: '/nonexistent', LIBTORCH: libtorch }).kind, 'prebuild');
    assert.deepEqual(readdirSync(join(cache, 'addon-tests')), markers);
  });

  it('refuses a TPO_VARIANT that is neither cpu nor cuda', () => {
    const r = loadIn(withPrebuild(), { ...nothing(), LIBTORCH: libtorch, TPO_VARIANT: 'rocm' });
    assert.match(r.error!, /TPO_VARIANT=rocm: not cpu or cuda/);
  });

  it('reports a bad TPO_NUM_THREADS as a load error that names it', () => {
    const r = loadIn(ROOT, { TPO_NUM_THREADS: 'many' });
    assert.match(r.error!, /TPO_NUM_THREADS='many' is not a thread count/);
  });
});
