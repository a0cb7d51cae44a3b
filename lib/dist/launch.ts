// `tpo train|generate|eval ... --nproc N`: N ranks of the same command on this machine, each told its place by
// torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), as torchrun
// would start them; rank 0 hosts the rendezvous on a free port of 127.0.0.1.
//
// Rank 0 has this terminal (its progress bar, its output); the others' lines come through prefixed "[rank r]".
// When a rank fails the others stop on their own (their next collective fails, naming it); those still running
// after a grace period are terminated. SIGINT and SIGTERM are passed on once to every rank (they run in a process
// group of their own, so a terminal's Ctrl-C does not reach them twice).
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';

import { z } from 'zod';

import { parse } from '../validate.js';

export const LaunchOptions = z.strictObject({
  /** Ranks to start. */
  nproc: z.int().min(1).max(1024),
  /** The command line each rank runs (after the script): e.g. ['train', '--config', 'run.json']. */
  argv: z.array(z.string()),
  /** The script the ranks run (default: this process's, the tpo command). */
  script: z.string().min(1).optional(),
  /** libtorch threads per rank (default: TPO_NUM_THREADS, else this machine's cores / nproc). */
  threads: z.int().min(1).optional(),
  /** The rendezvous port (default: a free one). */
  port: z.int().min(1).max(65_535).optional(),
  /** Seconds the other ranks get to stop on their own after one failed. */
  grace: z.number().min(0).default(30),
});
export type LaunchOptions = z.input<typeof LaunchOptions>;

/** A free TCP port on 127.0.0.1 (free when asked: torchrun picks its port the same way). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

interface Exit {
  rank: number;
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

const describe = (e: Exit) => `rank ${e.rank} (pid ${e.pid}) ${e.signal ? `was killed by ${e.signal}` : `exited with ${e.code}`}`;

/** Lines of `stream` onto stderr, each prefixed. */
function forward(stream: NodeJS.ReadableStream | null, prefix: string): void {
  if (!stream) return;
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => process.stderr.write(`${prefix}${line}\n`));
}

/** Starts the ranks and waits for them all: 0 when every rank succeeded, else the first failure's exit code. */
export async function launchLocal(options: LaunchOptions): Promise<number> {
  const o = parse(LaunchOptions, options, '--nproc');
  const port = o.port ?? await freePort();
  const fromEnv = Number(process.env.TPO_NUM_THREADS);
  const threads = o.threads ?? (Number.isInteger(fromEnv) && fromEnv >= 1 ? fromEnv : Math.max(1, Math.floor(availableParallelism() / o.nproc)));
  const script = o.script ?? process.argv[1]!;
  const children: ChildProcess[] = [];
  const exits: Promise<Exit>[] = [];
  for (let rank = 0; rank < o.nproc; rank++) {
    const env = {
      ...process.env, RANK: String(rank), WORLD_SIZE: String(o.nproc), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(o.nproc),
      MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), TPO_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads),
    };
    const child = spawn(process.execPath, [...process.execArgv, script, ...o.argv], {
      env, detached: true, stdio: rank === 0 ? ['inherit', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
    });
    forward(child.stdout, `[rank ${rank}] `);
    forward(child.stderr, `[rank ${rank}] `);
    children.push(child);
    exits.push(new Promise((resolveExit) => {
      child.on('error', (error) => {
        process.stderr.write(`tpo: rank ${rank} could not start: ${error.message}\n`);
        resolveExit({ rank, pid: child.pid ?? -1, code: 127, signal: null });
      });
      child.on('exit', (code, signal) => resolveExit({ rank, pid: child.pid ?? -1, code, signal }));
    }));
  }
  const running = () => children.filter((c) => c.exitCode === null && c.signalCode === null);
  const signal = (name: NodeJS.Signals) => {
    for (const c of running()) c.kill(name);
  };
  const onInt = () => signal('SIGINT');
  const onTerm = () => signal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const killAll = () => signal('SIGKILL');
  process.once('exit', killAll);  // the launcher going away takes its ranks with it

  let failure: Exit | undefined;
  let timers: NodeJS.Timeout[] = [];
  for (const exit of exits) {
    void exit.then((e) => {
      if (failure || (e.code === 0 && !e.signal)) return;
      failure = e;
      process.stderr.write(`tpo: ${describe(e)}; the other ranks stop within ${o.grace} s\n`);
      timers = [
        setTimeout(() => signal('SIGTERM'), o.grace * 1000),
        setTimeout(killAll, o.grace * 1000 + 5000),
      ];
      for (const t of timers) t.unref();
    });
  }
  const all = await Promise.all(exits);
  for (const t of timers) clearTimeout(t);
  process.off('SIGINT', onInt);
  process.off('SIGTERM', onTerm);
  process.off('exit', killAll);
  if (!failure) return 0;
  const others = all.filter((e) => e !== failure && (e.code !== 0 || e.signal));
  if (others.length) process.stderr.write(`tpo: then ${others.map(describe).join(', ')}\n`);
  return failure.code && failure.code > 0 ? failure.code : 1;
}

/** `--nproc N` (or `--nproc=N`) taken out of a command line: the count, and the rest as the ranks run it. */
export function takeNproc(argv: readonly string[]): { nproc?: number; rest: string[] } {
  const rest: string[] = [];
  let nproc: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    let value: string | undefined;
    if (arg === '--nproc') value = argv[++i] ?? '';
    else if (arg.startsWith('--nproc=')) value = arg.slice('--nproc='.length);
    else {
      rest.push(arg);
      continue;
    }
    nproc = parse(z.coerce.number().int().min(1).max(1024), value.trim() === '' ? Number.NaN : value, '--nproc');
  }
  return nproc === undefined ? { rest } : { nproc, rest };
}
