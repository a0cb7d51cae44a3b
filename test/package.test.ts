// The published package: `npm pack`, installed into an empty project, loads its prebuilt addon without a
// compiler, and builds from source when no prebuild fits.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { removeDir, ROOT, tempDir } from './helpers.js';

/** The environment without npm's lifecycle variables (we run under `npm test`). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.toLowerCase().startsWith('npm_')) env[k] = v;
  delete env.TPO_ADDON;
  return { ...env, ...extra };
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 600_000 });
  return { status: r.status, stdout: r.stdout, out: `${r.stdout}\n${r.stderr}` };
}

describe('the packed package', function () {
  this.timeout(600_000);
  let dir: string;
  let app: string;
  let tarball: string;
  let compilerLog: string;
  let noCompilers: NodeJS.ProcessEnv;

  before(() => {
    dir = tempDir('tpo-pack-');
    const packed = run('npm', ['pack', '--json', '--pack-destination', dir], ROOT, cleanEnv());
    assert.equal(packed.status, 0, packed.out);
    tarball = join(dir, JSON.parse(packed.stdout)[0].filename);

    // Every compiler and build tool on PATH records that it was called and fails.
    const fakeBin = join(dir, 'no-compilers');
    compilerLog = join(dir, 'compiler-calls.log');
    mkdirSync(fakeBin);
    for (const tool of ['cc', 'gcc', 'c++', 'g++', 'clang', 'clang++', 'cmake', 'make', 'ninja', 'node-gyp']) {
      writeFileSync(join(fakeBin, tool), `#!/bin/sh\necho "${tool} $*" >> ${compilerLog}\nexit 1\n`);
      chmodSync(join(fakeBin, tool), 0o755);
    }
    noCompilers = cleanEnv({ PATH: `${fakeBin}:${process.env.PATH}` });

    app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  });
  after(() => removeDir(dir));

  it('ships the compiled library, its types, the native sources and the prebuilt addon, and no tests', () => {
    const list = run('tar', ['tzf', tarball], dir, cleanEnv()).out.split('\n');
    for (const f of ['package/dist/lib/index.js', 'package/dist/lib/index.d.ts', 'package/dist/lib/cli/main.js',
      'package/prebuilds/linux-x64/cpu/tpo.node', 'package/prebuilds/linux-x64/cpu/preload/tpo_preload.node',
      'package/prebuilds/linux-x64/cpu/manifest.json', 'package/CMakeLists.txt', 'package/binding.gyp',
      'package/native/addon.cc', 'package/scripts/install.js', 'package/scripts/setup.sh',
      'package/assets/base-model/model.safetensors', 'package/assets/base-model/tokenizer.json']) {
      assert.ok(list.includes(f), `${f} is in the tarball`);
    }
    assert.ok(!list.some((f) => f.startsWith('package/dist/test') || f.startsWith('package/test/')), 'no tests shipped');
  });

  it('installs into an empty project and loads the prebuilt addon without invoking a compiler', () => {
    const install = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball], app, noCompilers);
    assert.equal(install.status, 0, install.out);
    assert.ok(!existsSync(compilerLog), `no compiler was called, yet: ${existsSync(compilerLog) ? readFileSync(compilerLog, 'utf8') : ''}`);
    assert.match(install.out, /tpo: using the prebuild addon .*prebuilds\/linux-x64\/cpu\/tpo\.node on libtorch 2\.13\.0/);
    assert.ok(!existsSync(join(app, 'node_modules', 'tpo', 'build')), 'nothing was built');

    const use = run(process.execPath, ['--input-type=module', '-e', `
      import { loadNative, tensor, readSafetensors, writeSafetensors } from 'tpo';
      const l = loadNative();
      await writeSafetensors('w.safetensors', { w: tensor(new Float32Array([1, 2])) });
      const { tensors } = await readSafetensors('w.safetensors');
      console.log(JSON.stringify({ kind: l.kind, path: l.path, w: Array.from(tensors.w.toTypedArray()) }));`], app, noCompilers);
    assert.equal(use.status, 0, use.out);
    const loaded = JSON.parse(use.stdout);
    assert.equal(loaded.kind, 'prebuild');
    assert.equal(loaded.path, join(app, 'node_modules', 'tpo', 'prebuilds', 'linux-x64', 'cpu', 'tpo.node'));
    assert.deepEqual(loaded.w, [1, 2]);

    const doctor = run(join(app, 'node_modules', '.bin', 'tpo'), ['doctor', '--bench-seconds', '0'], app, noCompilers);
    assert.equal(doctor.status, 0, doctor.out);
    assert.match(doctor.out, /addon\s+prebuild /);
  });

  it('builds from source when no prebuild fits this platform', () => {
    const installed = join(app, 'node_modules', 'tpo');
    assert.ok(existsSync(installed), 'the previous test installed the package');
    rmSync(join(installed, 'prebuilds'), { recursive: true });
    const rebuild = run('npm', ['rebuild', 'tpo', '--foreground-scripts'], app, cleanEnv());
    assert.equal(rebuild.status, 0, rebuild.out);
    assert.match(rebuild.out, /no prebuilt addon for this platform: building from source/);
    const use = run(process.execPath, ['--input-type=module', '-e',
      `import { loadNative } from 'tpo'; const l = loadNative(); console.log(l.kind, l.path);`], app, cleanEnv());
    assert.equal(use.status, 0, use.out);
    assert.equal(use.stdout.trim(), `source ${join(installed, 'build', 'Release', 'tpo.node')}`);
  });
});
