// Shared by the tests: temporary folders, running tpo in a child process, the repository's root.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository (dist/test/helpers.js lives two levels below it). */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const FIXTURES = join(ROOT, 'test', 'fixtures');

/** A fresh temporary folder, removed after the current mocha suite by `cleanup`. */
export function tempDir(prefix = 'tpo-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Runs `node --input-type=module -e code` and returns its exit status and output. */
export function runNode(code: string, options: SpawnSyncOptions = {}) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8',
    timeout: 120_000,
    ...options,
  });
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/**
 * Runs `act` synchronously the moment `ready()` holds for `folder` (made by another process): from an inotify
 * callback on the folder, so that it lands within a millisecond of the file that made it ready, where polling can be
 * late by a whole short run (a 3-step training is over in a fraction of a second on a free machine). Rejects if
 * `alive()` says the other process ended first, or after `timeoutMs`.
 */
export async function whenReady(folder: string, ready: () => boolean, act: () => void,
  { alive = (): boolean => true, timeoutMs = 120_000 }: { alive?: () => boolean; timeoutMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(folder)) {
    if (!alive() || Date.now() > deadline) throw new Error(`${folder} was never made`);
    await new Promise((res) => setTimeout(res, 5));
  }
  await new Promise<void>((resolve, reject) => {
    const check = () => {
      if (ready()) {
        stop();
        act();
        resolve();
      } else if (!alive() || Date.now() > deadline) {
        stop();
        reject(new Error(`${folder}: not ready before ${alive() ? 'the timeout' : 'the process ended'}`));
      }
    };
    const watcher = watch(folder, check);
    // A slow poll as well, so that an exit or the timeout is noticed when the folder goes quiet.
    const timer = setInterval(check, 100);
    const stop = () => (watcher.close(), clearInterval(timer));
    check();
  });
}
