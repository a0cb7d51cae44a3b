// native/dist's process group over c10d (TCPStore + ProcessGroupGloo), two real processes on 127.0.0.1: the
// collectives, and what the other ranks see when a rank dies, never arrives, or runs another config. And NCCL as far
// as this machine allows: its absence from a build, a machine without a GPU, or (with one) a 1-rank group's collectives.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { freePort } from '../../lib/dist/launch.js';
import { native } from '../../lib/native.js';
import { removeDir, ROOT, tempDir } from '../helpers.js';

// One rank: joins the group (RANK, WORLD_SIZE, MASTER_PORT, IDENTITY, TIMEOUT from the environment), then does
// what argv[2] says. An error is printed as "code: message" and the exit status is 3.
const RANK_SCRIPT = `
import { Group } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'lib', 'dist', 'group.js')).href)};
const env = { rank: Number(process.env.RANK), worldSize: Number(process.env.WORLD_SIZE), localRank: 0, localWorldSize: 1,
  masterAddr: '127.0.0.1', masterPort: Number(process.env.MASTER_PORT) };
try {
  const settings = { timeout: Number(process.env.TIMEOUT ?? 30), backend: process.env.BACKEND ?? 'gloo' };
  const group = await Group.connect(env, settings, process.env.IDENTITY ?? 'same');
  if (process.argv[2] === 'collectives') {
    const gathered = await group.allGather({ rank: group.rank, text: 'é'.repeat(group.rank * 3) }, 'test gather');
    const sums = await group.sum([group.rank + 1, 0.5], 'test sum');
    const decided = await group.decide('test decision', async () => ({ chosen: 'by rank 0' }));
    let failed = '';
    try { await group.decide('test failure', async () => { throw Object.assign(new Error('no such folder'), { code: 'ERR_TPO_RUN_FOLDER' }); }); }
    catch (e) { failed = e.code + ' ' + e.message; }
    await group.close();
    console.log(JSON.stringify({ gathered, sums, decided, failed, stats: group.stats().calls > 0 }));
  } else {
    console.log('ready');
    for (;;) {
      await group.sum([1], 'a test all-reduce');
      await new Promise((r) => setTimeout(r, 20));
    }
  }
} catch (e) {
  console.error(e.code + ': ' + e.message);
  process.exit(3);
}
`;

interface Rank {
  child: ChildProcess;
  out: string;
  err: string;
  exited: Promise<{ code: number | null; seconds: number }>;
}

describe('distributed: process group (c10d Gloo, 2 processes)', function () {
  this.timeout(120_000);
  let dir: string;
  let script: string;
  before(() => {
    dir = tempDir('tpo-group-');
    script = join(dir, 'rank.mjs');
    writeFileSync(script, RANK_SCRIPT);
  });
  after(() => removeDir(dir));

  const start = (rank: number, worldSize: number, port: number, mode: string, env: Record<string, string> = {}): Rank => {
    const child = spawn(process.execPath, [script, mode], {
      env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(worldSize), MASTER_PORT: String(port), TPO_NUM_THREADS: '1', ...env },
    });
    const r: Rank = { child, out: '', err: '', exited: undefined as never };
    child.stdout!.on('data', (d) => (r.out += d));
    child.stderr!.on('data', (d) => (r.err += d));
    const t0 = performance.now();
    r.exited = new Promise((resolve) => child.on('exit', (code) => resolve({ code, seconds: (performance.now() - t0) / 1000 })));
    return r;
  };
  const ready = async (r: Rank) => {
    while (!r.out.includes('ready')) {
      if (r.child.exitCode !== null) throw new Error(`rank exited early: ${r.err}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  };

  it('gathers, sums, and shares rank 0\'s decisions and errors', async () => {
    const port = await freePort();
    const ranks = [start(0, 2, port, 'collectives'), start(1, 2, port, 'collectives')];
    const exits = await Promise.all(ranks.map((r) => r.exited));
    for (const [i, e] of exits.entries()) assert.equal(e.code, 0, `rank ${i}: ${ranks[i]!.err}`);
    for (const r of ranks) {
      const result = JSON.parse(r.out);
      assert.deepEqual(result.gathered, [{ rank: 0, text: '' }, { rank: 1, text: 'ééé' }]);
      assert.deepEqual(result.sums, [3, 1]);
      assert.deepEqual(result.decided, { chosen: 'by rank 0' });
      assert.match(result.failed, /^ERR_TPO_RUN_FOLDER (rank 0: )?no such folder$/);
      assert.equal(result.stats, true);
    }
  });

  for (const victim of [1, 0]) {
    it(`a rank that is killed (rank ${victim}, SIGKILL) stops the other within seconds, with an error naming it`, async () => {
      const port = await freePort();
      const ranks = [start(0, 2, port, 'loop'), start(1, 2, port, 'loop')];
      await Promise.all(ranks.map(ready));
      ranks[victim]!.child.kill('SIGKILL');
      const survivor = ranks[1 - victim]!;
      const { code, seconds } = await survivor.exited;
      assert.equal(code, 3, survivor.err);
      assert.match(survivor.err, /^ERR_TPO_DIST: a test all-reduce failed on rank \d of 2: rank (\d) stopped/m);
      assert.doesNotMatch(survivor.err, /frame #/, 'no C++ backtraces');
      assert.equal(/: rank (\d) stopped/.exec(survivor.err)![1], String(victim));
      assert.ok(seconds < 30, `stopped after ${seconds} s`);
    });
  }

  it('refuses ranks whose config differs, at rendezvous', async () => {
    const port = await freePort();
    const ranks = [start(0, 2, port, 'loop', { IDENTITY: 'config A' }), start(1, 2, port, 'loop', { IDENTITY: 'config B' })];
    const exits = await Promise.all(ranks.map((r) => r.exited));
    for (const [i, r] of ranks.entries()) {
      assert.equal(exits[i]!.code, 3, r.err);
      assert.match(r.err, /ERR_TPO_DIST: rendezvous at 127\.0\.0\.1:\d+: rank \d runs tpo .* \(world size 2, config [0-9a-f]+\), rank \d runs .*: every rank must run the same tpo version with the same config/);
      assert.doesNotMatch(r.out, /ready/);
    }
  });

  it('distributed.backend "nccl": what this build and machine allow, said before the rendezvous (or a 1-rank group on a GPU)', async () => {
    const built = native().distBackends().nccl;
    const gpu = existsSync('/proc/driver/nvidia/version');
    const port = await freePort();
    const rank = start(0, 1, port, 'collectives', { BACKEND: 'nccl', TIMEOUT: '60' });
    const { code, seconds } = await rank.exited;
    if (built && gpu) {
      // A GPU: NCCL's collectives of tpo's CPU values go through this rank's GPU and come back.
      assert.equal(code, 0, rank.err);
      const result = JSON.parse(rank.out);
      assert.deepEqual(result.gathered, [{ rank: 0, text: '' }]);
      assert.deepEqual(result.sums, [1, 0.5]);
      assert.deepEqual(result.decided, { chosen: 'by rank 0' });
      return;
    }
    assert.equal(code, 3, `${rank.out}\n${rank.err}`);
    assert.match(rank.err, built
      ? /^ERR_TPO_DIST: distributed\.backend 'nccl' needs an NVIDIA GPU for every rank, and rank 0 of 1 has none that libtorch sees \(no GPU or driver here, or CUDA_VISIBLE_DEVICES hides them\); use 'gloo' on CPUs$/m
      : /^ERR_TPO_DIST: distributed\.backend 'nccl': this tpo build has no NCCL \(it was built against a CPU libtorch, or without NCCL's headers: `tpo doctor` says which\); use 'gloo'$/m);
    assert.doesNotMatch(rank.err, /frame #|Segmentation|Aborted/);
    assert.ok(seconds < 30, `${seconds} s`);
  });

  it('says which ranks never arrived, after the timeout', async () => {
    const port = await freePort();
    const alone = start(0, 2, port, 'loop', { TIMEOUT: '2' });
    const { code, seconds } = await alone.exited;
    assert.equal(code, 3, alone.err);
    assert.match(alone.err, /ERR_TPO_DIST: rendezvous at 127\.0\.0\.1:\d+: rank 1 of 2 did not arrive within 2 s/);
    assert.ok(seconds < 20, `${seconds} s`);
  });
});
