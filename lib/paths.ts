// What a path is, checked before it is opened or created: the one helper every command and library entry point
// that takes a path goes through.
//
// Why: a FIFO given as an input blocks the thread that opens it forever (not even process.exit ends the process
// then); a character device never ends; a folder under /proc or /sys makes Node's recursive mkdir spin at 100 % CPU.
// Each of these is an error naming the path and what it was meant to be, before anything waits on it.
//
// The checks are synchronous (stat and statfs never block on what a path is): a method that hands a native handle
// to a worker still starts its native call before it returns, so `using t = ...; return write(t)` stays safe.
import { closeSync, mkdirSync, openSync, readdirSync, rmSync, type Stats, statfsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** A path that is not what its use needs (code ERR_TPO_PATH). */
export class PathError extends Error {
  readonly code = 'ERR_TPO_PATH';
  /** What is wrong, without the path. */
  constructor(readonly path: string, readonly reason: string) {
    super(`${path}: ${reason}`);
    this.name = 'PathError';
  }
}

// Kernel file systems whose files are not data (statfs f_type, linux/magic.h).
const VIRTUAL_FILE_SYSTEMS = new Map<number, string>([
  [0x9fa0, 'procfs'], [0x62656572, 'sysfs'], [0x64626720, 'debugfs'], [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'], [0x63677270, 'cgroup2'], [0x27e0eb, 'cgroup'], [0xcafe4a11, 'bpf'],
  [0x1cd1, 'devpts'], [0x6165676c, 'pstore'], [0x62656570, 'configfs'], [0x65735543, 'fusectl'],
]);

function virtualFileSystem(path: string): string | undefined {
  try {
    return VIRTUAL_FILE_SYSTEMS.get(Number(statfsSync(path).type));
  } catch {
    return undefined;
  }
}

/** What a non-regular, non-folder entry is, in words. */
function kindOf(s: Stats): string {
  if (s.isFIFO()) return 'a FIFO (named pipe)';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isDirectory()) return 'a folder';
  return 'not a regular file';
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new PathError(path, `cannot be read: ${(error as Error).message}`);
  }
}

const missing = (path: string, what: string) => new PathError(path, `ENOENT: no such file or directory (${what})`);

/** An error on `named` (default `path`) when `path` is on a kernel file system. */
function refuseVirtual(path: string, what: string, named = path): void {
  const fs = virtualFileSystem(path);
  if (fs) throw new PathError(named, `is on ${fs}, a kernel file system, not a place for ${what}`);
}

/** `path` is an existing regular file on a real file system (not a FIFO, device, socket or folder). */
export function checkInputFile(path: string, what = 'an input file'): Stats {
  const s = statOrUndefined(path);
  if (!s) throw missing(path, what);
  if (!s.isFile()) throw new PathError(path, `is ${kindOf(s)}, not a regular file (${what})`);
  refuseVirtual(path, what);
  return s;
}

/** `path` is an existing folder on a real file system. */
export function checkInputDir(path: string, what = 'an input folder'): void {
  const s = statOrUndefined(path);
  if (!s) throw missing(path, what);
  if (!s.isDirectory()) throw new PathError(path, `is ${s.isFile() ? 'a file' : kindOf(s)}, not a folder (${what})`);
  refuseVirtual(path, what);
}

/** `path` is a regular file or a folder (a video may be a folder of frames, a checkpoint a folder of shards). */
export function checkInputFileOrDir(path: string, what = 'an input'): 'file' | 'dir' {
  const s = statOrUndefined(path);
  if (!s) throw missing(path, what);
  if (!s.isFile() && !s.isDirectory()) throw new PathError(path, `is ${kindOf(s)}, not a file or a folder (${what})`);
  refuseVirtual(path, what);
  return s.isFile() ? 'file' : 'dir';
}

/**
 * Every file of folder `dir` whose name matches `names` (and `required` among them) is a regular file: what a
 * native reader will open (a model folder's config.json and safetensors shards).
 */
export function checkFolderFiles(dir: string, names: RegExp, what: string): string[] {
  checkInputDir(dir, what);
  const found: string[] = [];
  for (const entry of readdirSync(dir)) {
    if (!names.test(entry)) continue;
    checkInputFile(join(dir, entry), `${what}: ${entry}`);
    found.push(entry);
  }
  return found;
}

/** The nearest existing ancestor of `path` (itself included). */
function existingAncestor(path: string): { path: string; stats: Stats } {
  let at = resolve(path);
  for (;;) {
    const s = statOrUndefined(at);
    if (s) return { path: at, stats: s };
    const up = dirname(at);
    if (up === at) throw new PathError(path, 'no part of it exists');
    at = up;
  }
}

/** Creates folder `dir` (and its parents) after checking that it can be one: never under /proc or /sys. */
export function prepareOutputDir(dir: string, what = 'an output folder'): void {
  const { path: found, stats } = existingAncestor(dir);
  if (!stats.isDirectory()) {
    const message = found === resolve(dir) ? `is ${stats.isFile() ? 'a file' : kindOf(stats)}, not a folder (${what})`
      : `cannot hold ${what}: ${found} is ${stats.isFile() ? 'a file' : kindOf(stats)}, not a folder`;
    throw new PathError(dir, message);
  }
  refuseVirtual(found, what, dir);
  if (found !== resolve(dir)) mkdirSync(dir, { recursive: true });
}

/**
 * Before writing file `file`: it is absent or a regular file (not a folder, FIFO or device), and its folder is on a
 * real file system. `createDir` creates the folder (else a missing one fails as the write would, with ENOENT);
 * `probe` checks that the folder takes a new file (a read-only mount, no write permission) by creating and
 * removing one: what a command checks before hours of work.
 */
export function prepareOutputFile(
  file: string, what = 'an output file', options: { createDir?: boolean; probe?: boolean } = {},
): void {
  const s = statOrUndefined(file);
  if (s && !s.isFile()) throw new PathError(file, `is ${kindOf(s)}, not a file (${what})`);
  const dir = dirname(resolve(file));
  if (options.createDir) prepareOutputDir(dir, `the folder of ${what}`);
  else {
    const { path: found, stats } = existingAncestor(dir);
    if (!stats.isDirectory()) throw new PathError(file, `cannot be written: ${found} is not a folder`);
    refuseVirtual(found, what, file);
  }
  if (options.probe) probeWritable(dir, file, what);
}

let probes = 0;

function probeWritable(dir: string, file: string, what: string): void {
  const probe = join(dir, `.tpo-write-probe-${process.pid}-${probes++}`);
  try {
    closeSync(openSync(probe, 'wx'));
  } catch (error) {
    throw new PathError(file, `cannot be written (${what}): ${(error as Error).message}`);
  } finally {
    rmSync(probe, { force: true });
  }
}

/** `prepareOutputDir`, then a probe that the folder takes new files. */
export function prepareWritableDir(dir: string, what = 'an output folder'): void {
  prepareOutputDir(dir, what);
  probeWritable(resolve(dir), dir, what);
}
