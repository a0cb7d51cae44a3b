// The typed boundary: the one place that finds, loads and describes the native addon.
//
// Candidates, in order (the first that loads wins):
//   1. TPO_ADDON, an explicit path to a tpo.node (strict: when set, nothing else is tried);
//   2. a source build in build/Release (node-gyp-build resolves it; its RUNPATH names its libtorch);
//   3. prebuilds/<platform>-<arch>/{cuda,cpu}/: a relocatable addon with a manifest.json naming the libtorch
//      version and variant it was built against. The CUDA one is tried first when an NVIDIA driver is present
//      (TPO_VARIANT=cpu|cuda picks one kind alone, and skips the source build). We find such a libtorch
//      (lib/libtorch.ts); a child process preloads its libraries with the torch-free tpo_preload.node, loads the
//      addon and runs a small matmul on the variant's device (node-llama-cpp's way: a crash or a missing library
//      of a prebuilt binary ends that child, not this process, and the next candidate is tried); then this
//      process does the same and checks that the addon runs on the libtorch we chose. A passing child test is
//      remembered in the tpo cache (by the addon's file, the libtorch and the driver), so it runs once.
// When nothing loads, NativeLoadError says what each candidate lacked and the command that fixes it.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

import {
  cacheDir, findLibtorch, type Libtorch, libtorchLibraries, LIBTORCH_VERSION, searchLibtorch,
} from './libtorch.js';

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

/** The NVIDIA kernel driver's version line, when one is loaded (what a CUDA libtorch needs besides itself). */
export function nvidiaDriver(): string | undefined {
  try {
    return readFileSync('/proc/driver/nvidia/version', 'utf8').split('\n')[0]?.trim() || 'present';
  } catch {
    return undefined;
  }
}

export type Variant = 'cpu' | 'cuda';

/** TPO_VARIANT, checked: the one kind of addon to load, or undefined for the default order. */
function variantOverride(): Variant | undefined {
  const v = process.env.TPO_VARIANT;
  if (!v) return undefined;
  if (v !== 'cpu' && v !== 'cuda') throw new NativeLoadError([{ candidate: `TPO_VARIANT=${v}`, reason: 'not cpu or cuda' }], 'set TPO_VARIANT to cpu or cuda, or unset it');
  return v;
}

// ------------------------------------------------------------------------------------------------ loading

export type AddonKind = 'override' | 'source' | 'prebuild';

export interface LoadedAddon {
  addon: NativeAddon;
  path: string;
  kind: AddonKind;
  /** For a prebuild: cpu or cuda. */
  variant?: Variant;
  /** For a prebuild: the libtorch the loader found and preloaded. */
  libtorch?: Libtorch;
  /** Candidates tried before this one and why they were passed over (a CUDA prebuild on a machine without a GPU). */
  skipped: LoadAttempt[];
}

export interface LoadAttempt {
  candidate: string;
  reason: string;
  /** What fixes this candidate, when it is not the libtorch setup (a CUDA prebuild on a machine without a GPU). */
  fix?: string;
}

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

function setupHint(root: string, variants: Variant[]): string {
  const hints: string[] = [];
  if (variants.includes('cuda')) {
    hints.push(
      `for the CUDA prebuild: \`bash ${join(root, 'scripts', 'build-cuda.sh')} --unpack-only\` (unpacks PyTorch's CUDA ` +
        "libtorch and NVIDIA's libraries from their wheels into the cache), or set LIBTORCH to a CUDA libtorch folder",
    );
  }
  if (variants.includes('cpu')) {
    hints.push(
      `run \`bash ${join(root, 'scripts', 'setup.sh')} --libtorch-only\` (unpacks PyTorch ${LIBTORCH_VERSION}'s libtorch ` +
        `into the cache), or set LIBTORCH to a libtorch ${LIBTORCH_VERSION} folder`,
    );
  }
  return hints.join('; or ');
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
    return { addon: loadFile(path), path, kind: 'source', skipped: [...attempts] };
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

// The child process's test of a prebuild: preload, load, check the libtorch, run the smoke test on the device.
// CommonJS (node -e), its arguments as one JSON string; it prints the addon's CUDA facts on success.
const CHILD_TEST = `
const [preload, addonPath, libraries, libDir, device] = JSON.parse(process.argv[1]);
require(preload).preload(libraries);
const addon = require(addonPath);
const info = addon.runtimeInfo();
if (!info.libtorchPath.startsWith(libDir)) {
  console.error('runs on ' + info.libtorchPath + ', not on the libtorch at ' + libDir + ': two libtorch builds are loaded');
  process.exit(3);
}
addon.smokeTest(device);
console.log(JSON.stringify(info.cuda));
`;

/** Why the last lines of a failed child's stderr say it failed, in one line. */
function childReason(r: ReturnType<typeof spawnSync>): string {
  const lines = String(r.stderr ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('at ') && !/^\^+$/.test(l) && !l.startsWith('Node.js v'));
  // Node's report of an uncaught error: its source line and caret first, then "XError: message"; libtorch's and the
  // dynamic loader's own lines otherwise.
  const message = lines.find((l) => /^[A-Za-z]*Error: /.test(l)) ?? lines.find((l) => /error|cannot|not /i.test(l)) ?? lines.at(-1) ?? '';
  if (r.error) return `the test process could not run: ${r.error.message}`;
  if (r.signal) return `crashed with ${r.signal} in a test process${message ? ` (${message})` : ''}`;
  return message.replace(/^\S*Error: /, '') || `the test process exited with ${r.status}`;
}

/** The cache file that remembers a passing child test of this addon on this libtorch and driver. */
function testMarker(addonPath: string, libtorch: Libtorch, device: string): string {
  const stat = statSync(addonPath);
  const key = JSON.stringify([addonPath, stat.size, stat.mtimeMs, libtorch.dir, libtorch.version, device,
    device === 'cpu' ? '' : nvidiaDriver(), process.versions.modules]);
  return join(cacheDir(), 'addon-tests', `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.ok`);
}

/** Runs the prebuild in a child process first; undefined when it works, else why not. */
function testInChild(dir: string, libtorch: Libtorch, device: string): string | undefined {
  const addonPath = join(dir, 'tpo.node');
  const marker = testMarker(addonPath, libtorch, device);
  if (existsSync(marker)) return undefined;
  const args = [join(dir, 'preload', 'tpo_preload.node'), addonPath, libtorchLibraries(libtorch), join(libtorch.dir, 'lib'), device];
  const r = spawnSync(process.execPath, ['-e', CHILD_TEST, JSON.stringify(args)], {
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, TPO_NUM_THREADS: '1' },
  });
  if (r.status !== 0) return childReason(r);
  try {
    mkdirSync(join(cacheDir(), 'addon-tests'), { recursive: true });
    const tmp = `${marker}.${process.pid}`;
    writeFileSync(tmp, r.stdout);
    renameSync(tmp, marker);
  } catch {
    // An unwritable cache only means the test runs again next time.
  }
  return undefined;
}

function tryPrebuild(root: string, variant: Variant, attempts: LoadAttempt[]): LoadedAddon | undefined {
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
  // A CPU prebuild runs on a CUDA libtorch of its version too (it links libtorch_cpu alone); a CUDA one needs CUDA.
  const libtorch = findLibtorch({ version: manifest.torch, variant: manifest.variant === 'cuda' ? 'cuda' : undefined });
  if (!libtorch) {
    const { found, rejected } = searchLibtorch({ python: true });
    const seen = [
      ...found.map((l) => `${l.version} ${l.variant} at ${l.dir} [${l.source}]`),
      ...rejected.map((r) => `${r.dir}: ${r.problem}`),
    ];
    attempts.push({
      candidate,
      reason:
        `needs libtorch ${manifest.torch}${manifest.variant === 'cuda' ? ' with CUDA' : ''}; ` +
        (seen.length ? `found only: ${seen.join('; ')}` : 'none found (LIBTORCH unset, cache empty, no Python torch)'),
    });
    return undefined;
  }
  const failed = testInChild(dir, libtorch, variant === 'cuda' ? 'cuda' : 'cpu');
  if (failed) {
    if (/libav|libsw/.test(failed)) {
      attempts.push({ candidate, reason: failed, fix: FFMPEG_HINT });
    } else if (variant === 'cuda' && /CUDA|cuda|driver/.test(failed)) {
      attempts.push({
        candidate,
        reason: `${failed} (libtorch ${libtorch.version} at ${libtorch.dir}; NVIDIA driver: ${nvidiaDriver() ?? 'none'})`,
        fix: 'the CUDA prebuild needs an NVIDIA GPU with a driver recent enough for CUDA 13 (580 or newer); ' +
          'TPO_VARIANT=cpu (or unset) loads the CPU prebuild',
      });
    } else {
      attempts.push({ candidate, reason: failed });
    }
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
    return { addon, path, kind: 'prebuild', variant, libtorch, skipped: [...attempts] };
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
      return { addon: loadFile(override), path: override, kind: 'override', skipped: [] };
    } catch (error) {
      attempts.push({ candidate: `TPO_ADDON=${override}`, reason: shortReason(error) });
      throw new NativeLoadError(attempts, 'point TPO_ADDON at a built tpo.node, or unset it');
    }
  }
  const forced = variantOverride();
  if (!forced) {
    const fromSource = trySource(root, attempts);
    if (fromSource) return fromSource;
  }
  const driver = nvidiaDriver();
  const hasCuda = existsSync(join(prebuildDir(root), 'cuda', 'tpo.node'));
  let variants: Variant[];
  if (forced) variants = [forced];
  else if (driver) variants = ['cuda', 'cpu'];
  else {
    variants = ['cpu'];
    if (hasCuda) attempts.push({ candidate: `prebuild ${process.platform}-${process.arch}/cuda`, reason: 'no NVIDIA driver (/proc/driver/nvidia/version)' });
  }
  for (const variant of variants) {
    const loaded = tryPrebuild(root, variant, attempts);
    if (loaded) return loaded;
  }
  const present = variants.filter((v) => existsSync(join(prebuildDir(root), v, 'tpo.node')));
  if (present.length === 0) {
    attempts.push({
      candidate: `prebuilds/${process.platform}-${process.arch}${forced ? `/${forced}` : ''}`,
      reason: forced ? `no ${forced} prebuild (TPO_VARIANT=${forced})` : 'no prebuilt addon for this platform',
    });
  }
  const fixes = [...new Set(attempts.map((a) => a.fix).filter((f): f is string => f !== undefined))];
  const fix = fixes.length > 0
    ? fixes.join('; or ')
    : present.length > 0
    ? setupHint(root, present)
    : forced === 'cuda'
      ? `build it: \`bash ${join(root, 'scripts', 'build-cuda.sh')}\``
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
