#!/usr/bin/env node
// Builds the relocatable addon for prebuilds/<platform>-<arch>/<variant>/ (what `npm pack` ships):
//   tpo.node                 linked against libtorch without an RPATH (the loader preloads a libtorch it finds)
//   preload/tpo_preload.node the torch-free helper that does that preloading
//   manifest.json            the libtorch version and variant it needs, and the system libraries it links
// After a source build this costs nothing: CMakeLists.txt links the relocatable addon from the same objects.
//   node scripts/prebuild.js [--out DIR] [--no-build]
//   --out DIR    the build folder (default build; scripts/build-cuda.sh uses build-cuda)
//   --no-build   package what DIR holds without building first
// The variant (cpu or cuda) and the libtorch version are those of the libtorch DIR was configured with.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, renameSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: { out: { type: 'string', default: 'build' }, 'no-build': { type: 'boolean', default: false } },
});
const out = resolve(root, args.out);
if (!args['no-build']) {
  const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.js'), '--out', out], {
    cwd: root,
    stdio: 'inherit',
  });
  if (build.status !== 0) process.exit(1);
}

// The libtorch this build folder was configured against (CMakeCache.txt), not whichever one is found now.
const { inspectLibtorch } = await import(join(root, 'dist', 'lib', 'libtorch.js'));
const cache = readFileSync(join(out, 'CMakeCache.txt'), 'utf8');
const configured = /^TPO_LIBTORCH:PATH=(.*)$/m.exec(cache)?.[1];
if (!configured) {
  console.error(`prebuild: ${join(out, 'CMakeCache.txt')} names no TPO_LIBTORCH`);
  process.exit(1);
}
const libtorch = inspectLibtorch(configured, 'LIBTORCH');
if ('problem' in libtorch) {
  console.error(`prebuild: ${configured} ${libtorch.problem}`);
  process.exit(1);
}
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const addon = join(out, 'Release', 'relocatable', 'tpo.node');

// The sonames the addon needs beyond libtorch and the C/C++ runtime: what a user's system must provide.
const needed = execFileSync('readelf', ['-d', addon], { encoding: 'utf8' })
  .split('\n')
  .map((line) => /\(NEEDED\)\s+Shared library: \[(.+)\]/.exec(line)?.[1])
  .filter((name) => name && !/^lib(c10|torch|stdc\+\+|gcc_s|c|m)[._]/.test(name));

const manifest = {
  package: pkg.version,
  torch: libtorch.version,
  variant: libtorch.variant,
  napi: pkg.binary.napi_versions[0],
  platform: process.platform,
  arch: process.arch,
  systemLibraries: needed,
};

// Assemble in a temporary folder and rename: a half-written prebuild never has the name the loader looks for.
const target = join(root, 'prebuilds', `${process.platform}-${process.arch}`, libtorch.variant);
const staging = `${target}.tmp-${process.pid}`;
rmSync(staging, { recursive: true, force: true });
mkdirSync(join(staging, 'preload'), { recursive: true });
copyFileSync(addon, join(staging, 'tpo.node'));
copyFileSync(join(out, 'Release', 'preload', 'tpo_preload.node'), join(staging, 'preload', 'tpo_preload.node'));
writeFileSync(join(staging, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
rmSync(target, { recursive: true, force: true });
renameSync(staging, target);
console.error(`prebuild: ${target} (libtorch ${manifest.torch} ${manifest.variant}; needs ${needed.join(', ')})`);
