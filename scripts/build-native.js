#!/usr/bin/env node
// Builds the native addon (CMakeLists.txt) with cmake-js against the libtorch that lib/libtorch.ts finds.
//   node scripts/build-native.js [--out DIR] [--copy-to DIR] [--debug]
//   --out DIR      cmake's build folder (default: build; the addon lands in DIR/Release)
//   --copy-to DIR  copy the built .node files there (binding.gyp uses this to hand node-gyp its product)
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: 'build' },
    'copy-to': { type: 'string' },
    debug: { type: 'boolean', default: false },
  },
});

const libtorchModule = join(root, 'dist', 'lib', 'libtorch.js');
if (!existsSync(libtorchModule)) {
  console.error(`build-native: ${libtorchModule} is missing; run \`npm run build:ts\` first`);
  process.exit(1);
}
const { findLibtorch, LIBTORCH_VERSION, searchLibtorch, TESTED_LIBTORCH_VERSIONS } = await import(libtorchModule);
const libtorch = findLibtorch();
if (!libtorch) {
  const { rejected } = searchLibtorch({ python: true });
  console.error('build-native: no libtorch 2.x found.');
  for (const r of rejected) console.error(`  ${r.dir}: ${r.problem}`);
  console.error(`Run \`bash scripts/setup.sh --libtorch-only\` (PyTorch ${LIBTORCH_VERSION}'s libtorch into the cache)`);
  console.error('or set LIBTORCH to a libtorch 2.x folder.');
  process.exit(1);
}
if (!TESTED_LIBTORCH_VERSIONS.includes(libtorch.version))
  console.warn(`build-native: building against libtorch ${libtorch.version}; tpo is tested with ${TESTED_LIBTORCH_VERSIONS.join(' and ')}`);
console.error(`build-native: libtorch ${libtorch.version} (${libtorch.variant}) from ${libtorch.dir} [${libtorch.source}]`);

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const require = createRequire(import.meta.url);
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const jobs = String(availableParallelism());
const cmakeArgs = [
  cmakeJs, 'compile',
  '--directory', root,
  '--out', resolve(root, args.out),
  '--parallel', jobs,
  `--CDTPO_LIBTORCH=${libtorch.dir}`,
  `--CDTPO_PACKAGE_VERSION=${pkg.version}`,
];
if (args.debug) cmakeArgs.push('--debug');
const result = spawnSync(process.execPath, cmakeArgs, {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, CMAKE_BUILD_PARALLEL_LEVEL: jobs },
});
if (result.status !== 0) {
  console.error(`build-native: cmake-js failed (exit ${result.status ?? result.signal})`);
  process.exit(1);
}

const productDir = join(resolve(root, args.out), args.debug ? 'Debug' : 'Release');
if (args['copy-to']) {
  const to = resolve(args['copy-to']);
  mkdirSync(to, { recursive: true });
  copyFileSync(join(productDir, 'tpo.node'), join(to, 'tpo.node'));
  mkdirSync(join(to, 'preload'), { recursive: true });
  copyFileSync(join(productDir, 'preload', 'tpo_preload.node'), join(to, 'preload', 'tpo_preload.node'));
}
