// The typed boundary: the one place that finds, loads and describes the native addon.
//
// Candidates, in order (the first that loads wins):
//   1. TPO_ADDON, an explicit path to a tpo.node (strict: when set, nothing else is tried);
//   2. a source build in build/Release (node-gyp-build resolves it; its RUNPATH names its libtorch);
//   3. prebuilds/<platform>-<arch>/{cuda,cpu}/: a relocatable addon with a manifest.json naming the libtorch
//      version it was built against. We find such a libtorch (lib/libtorch.ts), preload its libraries with the
//      torch-free tpo_preload.node, then load the addon, and check that it runs on the libtorch we chose.
// When nothing loads, NativeLoadError says what each candidate lacked and the command that fixes it.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

import { findLibtorch, type Libtorch, libtorchLibraries, LIBTORCH_VERSION, searchLibtorch } from './libtorch.js';

const require = createRequire(import.meta.url);

/** The package's root folder (dist/lib/native.js lives two levels below it). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));

// The addon's types (what each native function takes and returns) live in lib/addon.ts; re-exported here, where
// the rest of the library has always imported them from.
export * from './addon.js';
import type { NativeAddon } from './addon.js';

// ------------------------------------------------------------------------------------------------ prebuilds

/** prebuilds/<platform>-<arch>/<variant>/manifest.json, written by scripts/prebuild.js. */
export const PrebuildManifest = z.object({
  package: z.string(),
  torch: z.string().regex(/^\d+\.\d+\.\d+$/),
  variant: z.enum(['cpu', 'cuda']),
  napi: z.number().int(),
  platform: z.string(),
  arch: z.string(),
  /** Shared libraries the addon needs from the system (FFmpeg's), by soname. */
  systemLibraries: z.array(z.string()),
});
export type PrebuildManifest = z.infer<typeof PrebuildManifest>;

export function prebuildDir(root = PACKAGE_ROOT): string {
  return join(root, 'prebuilds', `${process.platform}-${process.arch}`);
}

function nvidiaDriverPresent(): boolean {
  return existsSync('/proc/driver/nvidia/version');
}

// ------------------------------------------------------------------------------------------------ loading

export type AddonKind = 'override' | 'source' | 'prebuild';

export interface LoadedAddon {
  addon: NativeAddon;
  path: string;
  kind: AddonKind;
  /** For a prebuild: the libtorch the loader found and preloaded. */
  libtorch?: Libtorch;
}

export interface LoadAttempt { candidate: string; reason: string }

export class NativeLoadError extends Error {
  readonly code = 'ERR_TPO_NATIVE_LOAD';
  constructor(readonly attempts: LoadAttempt[], readonly fix: string) {
    super(
      'tpo: the native addon could not be loaded.\n' +
        attempts.map((a) => `  - ${a.candidate}: ${a.reason}`).join('\n') +
        `\nFix: ${fix}`,
    );
    this.name = 'NativeLoadError';
  }
}

const FFMPEG_HINT =
  "FFmpeg's shared libraries are missing: `apt-get install libavformat59 libavcodec59 libswscale6 libavutil57` " +
  '(Debian 12), or `bash scripts/setup.sh` in a checkout';

function setupHint(root: string): string {
  const script = join(root, 'scripts', 'setup.sh');
  return (
    `run \`bash ${script} --libtorch-only\` (unpacks PyTorch ${LIBTORCH_VERSION}'s libtorch into the cache), ` +
    `or set LIBTORCH to a libtorch ${LIBTORCH_VERSION} folder`
  );
}

function shortReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}

function loadFile(path: string): NativeAddon {
  return require(path) as NativeAddon;
}

function trySource(root: string, attempts: LoadAttempt[]): LoadedAddon | undefined {
  let path: string;
  try {
    const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };
    path = nodeGypBuild.path(root);
  } catch {
    attempts.push({ candidate: 'source build (build/Release)', reason: 'not built' });
    return undefined;
  }
  try {
    return { addon: loadFile(path), path, kind: 'source' };
  } catch (error) {
    attempts.push({ candidate: `source build (${path})`, reason: shortReason(error) });
    return undefined;
  }
}

function readManifest(dir: string): PrebuildManifest {
  const file = join(dir, 'manifest.json');
  const parsed = PrebuildManifest.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

function tryPrebuild(root: string, variant: 'cpu' | 'cuda', attempts: LoadAttempt[]): LoadedAddon | undefined {
  const dir = join(prebuildDir(root), variant);
  const candidate = `prebuild ${process.platform}-${process.arch}/${variant}`;
  if (!existsSync(join(dir, 'tpo.node'))) return undefined;
  let manifest: PrebuildManifest;
  try {
    manifest = readManifest(dir);
  } catch (error) {
    attempts.push({ candidate, reason: shortReason(error) });
    return undefined;
  }
  const libtorch = findLibtorch(manifest.torch);
  if (!libtorch || (variant === 'cuda' && libtorch.variant !== 'cuda')) {
    const { found, rejected } = searchLibtorch({ python: true });
    const seen = [
      ...found.map((l) => `${l.version} ${l.variant} at ${l.dir} [${l.source}]`),
      ...rejected.map((r) => `${r.dir}: ${r.problem}`),
    ];
    attempts.push({
      candidate,
      reason:
        `needs libtorch ${manifest.torch}${variant === 'cuda' ? ' with CUDA' : ''}; ` +
        (seen.length ? `found only: ${seen.join('; ')}` : 'none found (LIBTORCH unset, cache empty, no Python torch)'),
    });
    return undefined;
  }
  const path = join(dir, 'tpo.node');
  try {
    const preload = require(join(dir, 'preload', 'tpo_preload.node')) as { preload(paths: string[]): void };
    preload.preload(libtorchLibraries(libtorch));
    const addon = loadFile(path);
    const loadedFrom = addon.runtimeInfo().libtorchPath;
    if (!loadedFrom.startsWith(join(libtorch.dir, 'lib'))) {
      throw new Error(`runs on ${loadedFrom}, not on the libtorch at ${libtorch.dir}: two libtorch builds are loaded`);
    }
    return { addon, path, kind: 'prebuild', libtorch };
  } catch (error) {
    const reason = shortReason(error);
    attempts.push({ candidate, reason: /libav|libsw/.test(reason) ? `${reason} (${FFMPEG_HINT})` : reason });
    return undefined;
  }
}

function load(root: string): LoadedAddon {
  const attempts: LoadAttempt[] = [];
  const override = process.env.TPO_ADDON;
  if (override) {
    try {
      return { addon: loadFile(override), path: override, kind: 'override' };
    } catch (error) {
      attempts.push({ candidate: `TPO_ADDON=${override}`, reason: shortReason(error) });
      throw new NativeLoadError(attempts, 'point TPO_ADDON at a built tpo.node, or unset it');
    }
  }
  const fromSource = trySource(root, attempts);
  if (fromSource) return fromSource;

  const variants: ('cpu' | 'cuda')[] = nvidiaDriverPresent() ? ['cuda', 'cpu'] : ['cpu'];
  for (const variant of variants) {
    const loaded = tryPrebuild(root, variant, attempts);
    if (loaded) return loaded;
  }
  const hasPrebuild = variants.some((v) => existsSync(join(prebuildDir(root), v, 'tpo.node')));
  if (!hasPrebuild) {
    attempts.push({ candidate: `prebuilds/${process.platform}-${process.arch}`, reason: 'no prebuilt addon for this platform' });
  }
  const fix = hasPrebuild
    ? setupHint(root)
    : `build from source: \`bash ${join(root, 'scripts', 'setup.sh')}\` (needs a C++ compiler, CMake and FFmpeg's ` +
      'development libraries; it installs them as root)';
  throw new NativeLoadError(attempts, fix);
}

const loaded = new Map<string, LoadedAddon>();

/** Loads the addon once per package root and describes where it came from. Throws NativeLoadError. */
export function loadNative(root = PACKAGE_ROOT): LoadedAddon {
  let entry = loaded.get(root);
  if (!entry) {
    entry = load(root);
    loaded.set(root, entry);
  }
  return entry;
}

/** The addon's functions. */
export function native(): NativeAddon {
  return loadNative().addon;
}
