// Where libtorch is. One answer for the build (scripts/build-native.js), the loader (native.ts) and `tpo doctor`:
//   1. LIBTORCH, a libtorch folder (the tch-rs convention);
//   2. the setup cache, where scripts/setup.sh unpacks PyTorch's wheel: $TPO_CACHE_DIR, else
//      $XDG_CACHE_HOME/tpo, else ~/.cache/tpo, as libtorch-<version>-<variant>;
//   3. an installed Python torch (torch.utils.cmake_prefix_path), asked only when the others fail.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** The libtorch this package is built and tested against (the CPU default, scripts/setup.sh). */
export const LIBTORCH_VERSION = '2.13.0';
/** The CUDA libtorch scripts/build-cuda.sh unpacks and the CUDA prebuild is built against (CUDA 13.0). */
export const LIBTORCH_CUDA_VERSION = '2.14.1';
/** Versions the sources are built and tested against; others of 2.x may build (version guards in native/). */
export const TESTED_LIBTORCH_VERSIONS = [LIBTORCH_VERSION, LIBTORCH_CUDA_VERSION];

export type LibtorchSource = 'LIBTORCH' | 'cache' | 'python';

export interface Libtorch {
  /** Folder holding lib/, include/ and share/cmake/Torch. */
  dir: string;
  /** e.g. "2.13.0" (no local suffix). */
  version: string;
  /** "cpu", or "cuda" when the folder holds libtorch_cuda.so. */
  variant: 'cpu' | 'cuda';
  source: LibtorchSource;
}

export function cacheDir(): string {
  if (process.env.TPO_CACHE_DIR) return resolve(process.env.TPO_CACHE_DIR);
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg ? resolve(xdg) : join(homedir(), '.cache'), 'tpo');
}

/** Reads a libtorch folder: its version (build-version, or the Python package's version.py) and variant. */
export function inspectLibtorch(dir: string, source: LibtorchSource): Libtorch | { dir: string; problem: string } {
  if (!existsSync(join(dir, 'lib', 'libtorch_cpu.so'))) return { dir, problem: 'has no lib/libtorch_cpu.so' };
  let version: string | undefined;
  const buildVersion = join(dir, 'build-version');
  const versionPy = join(dir, 'version.py');
  if (existsSync(buildVersion)) version = readFileSync(buildVersion, 'utf8').trim();
  else if (existsSync(versionPy)) version = /__version__\s*=\s*'([^']+)'/.exec(readFileSync(versionPy, 'utf8'))?.[1];
  if (!version) return { dir, problem: 'has no build-version file to tell its version' };
  const variant = existsSync(join(dir, 'lib', 'libtorch_cuda.so')) ? 'cuda' : 'cpu';
  return { dir, version: version.replace(/\+.*$/, ''), variant, source };
}

function pythonTorchDir(): string | undefined {
  try {
    const out = execFileSync(
      'python3',
      ['-c', 'import os, torch; print(os.path.dirname(torch.__file__))'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 30_000 },
    );
    return out.trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface LibtorchSearch {
  found: Libtorch[];
  /** Places looked at that did not hold a usable libtorch, and why. */
  rejected: { dir: string; problem: string }[];
}

/** Every libtorch candidate, in order of preference. */
export function searchLibtorch(options: { python?: boolean } = {}): LibtorchSearch {
  const search: LibtorchSearch = { found: [], rejected: [] };
  const consider = (dir: string, source: LibtorchSource) => {
    const r = inspectLibtorch(dir, source);
    if ('problem' in r) search.rejected.push({ dir, problem: `${r.problem} (from ${source})` });
    else search.found.push(r);
  };
  if (process.env.LIBTORCH) consider(resolve(process.env.LIBTORCH), 'LIBTORCH');
  const cache = cacheDir();
  if (existsSync(cache)) {
    for (const name of readdirSync(cache).sort().reverse()) {
      if (/^libtorch-\d+\.\d+\.\d+-(cpu|cuda)$/.test(name)) consider(join(cache, name), 'cache');
    }
  }
  if (options.python ?? search.found.length === 0) {
    const dir = pythonTorchDir();
    if (dir) consider(dir, 'python');
  }
  return search;
}

/** What a caller may ask of a libtorch: a version, a variant, or both. */
export interface LibtorchWanted {
  version?: string;
  variant?: Libtorch['variant'];
}

/**
 * The libtorch to use: LIBTORCH when it is set and fits, else the first candidate that matches `wanted`. With no
 * version asked, the cache's libtorch of LIBTORCH_VERSION (CPU unless a variant is asked) comes before other 2.x
 * ones, so that unpacking the CUDA libtorch beside it (scripts/build-cuda.sh) changes nothing for the default build.
 */
export function findLibtorch(wanted: string | LibtorchWanted = {}): Libtorch | undefined {
  const { version, variant } = typeof wanted === 'string' ? { version: wanted, variant: undefined } : wanted;
  const fits = (l: Libtorch) =>
    (version ? l.version === version : l.version.startsWith('2.')) && (!variant || l.variant === variant);
  let { found } = searchLibtorch();
  if (!found.some(fits)) found = searchLibtorch({ python: true }).found;
  const explicit = found.find((l) => l.source === 'LIBTORCH');
  if (explicit) return fits(explicit) ? explicit : found.find((l) => l !== explicit && fits(l));
  const preferred = found.find(
    (l) => fits(l) && l.version === (version ?? LIBTORCH_VERSION) && l.variant === (variant ?? 'cpu'),
  );
  return preferred ?? found.find(fits);
}

/** Shared libraries to preload, in dependency order, for an addon linked against this libtorch. */
export function libtorchLibraries(libtorch: Libtorch): string[] {
  const names = ['libc10.so', 'libtorch_cpu.so'];
  if (libtorch.variant === 'cuda') names.push('libc10_cuda.so', 'libtorch_cuda.so');
  names.push('libtorch.so');
  return names.map((n) => join(libtorch.dir, 'lib', n));
}
