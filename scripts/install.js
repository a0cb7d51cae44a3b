#!/usr/bin/env node
// npm's install hook for the published package: use the prebuilt addon when it loads here, and build from source
// only when no prebuild fits this platform (or when asked: npm_config_build_from_source / TPO_BUILD_FROM_SOURCE).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const say = (message) => console.error(`tpo: ${message}`);

if (!existsSync(join(root, 'dist', 'lib', 'native.js'))) {
  say('development checkout: run `bash scripts/setup.sh` to build');
  process.exit(0);
}

const fromSource = ['1', 'true'].includes(process.env.TPO_BUILD_FROM_SOURCE ?? '') ||
  process.env.npm_config_build_from_source === 'true';

if (!fromSource) {
  const { loadNative, prebuildDir, NativeLoadError } = await import(join(root, 'dist', 'lib', 'native.js'));
  try {
    const loaded = loadNative(root);
    const where = loaded.libtorch ? ` on libtorch ${loaded.libtorch.version} at ${loaded.libtorch.dir}` : '';
    say(`using the ${loaded.kind} addon ${loaded.path}${where}`);
    process.exit(0);
  } catch (error) {
    if (!(error instanceof NativeLoadError)) throw error;
    if (existsSync(prebuildDir(root))) {
      // A prebuild exists but cannot load yet (no libtorch, no FFmpeg): compiling would not help. Say what will.
      say('the prebuilt addon is installed but cannot load yet:');
      console.error(error.message);
      process.exit(0);
    }
    say('no prebuilt addon for this platform: building from source');
  }
}

const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.js')], { cwd: root, stdio: 'inherit' });
process.exit(build.status ?? 1);
