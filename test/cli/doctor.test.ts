// lib/cli/main.ts and lib/cli/doctor.ts: the `tpo` command as a user runs it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { LIBTORCH_CUDA_VERSION, LIBTORCH_VERSION } from '../../lib/libtorch.js';
import { ROOT } from '../helpers.js';

function tpo(args: string[], env: Record<string, string | undefined> = {}) {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'lib', 'cli', 'main.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('tpo doctor', () => {
  it('reports libtorch, threads, CPU kernels, FFmpeg and a matmul figure', () => {
    // Without TPO_NUM_THREADS (the suite may run under one), libtorch gets one thread per core.
    const r = tpo(['doctor', '--json', '--bench-seconds', '0.2'], { TPO_NUM_THREADS: undefined });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.ok, true);
    // The libtorch the addon was built against (the CPU default; the CUDA one when TPO_ADDON names a CUDA build).
    assert.equal(report.runtime.torchVersion, report.runtime.cuda.built ? LIBTORCH_CUDA_VERSION : LIBTORCH_VERSION);
    assert.equal(report.libtorch.version, report.runtime.torchVersion);
    assert.equal(report.libtorch.variant, report.runtime.cuda.built ? 'cuda' : 'cpu');
    assert.match(report.runtime.libtorchPath, /libtorch_cpu\.so$/);
    assert.match(report.runtime.cpuCapability, /^(DEFAULT|AVX2|AVX512|ZVECTOR|VSX|SVE\d*)$/);
    assert.equal(report.runtime.threads.intraOp, report.runtime.threads.cores);
    assert.deepEqual(report.runtime.ffmpeg.libraries.map((l: { name: string }) => l.name), ['libavformat', 'libavcodec', 'libavutil', 'libswscale']);
    assert.ok(report.matmul.gflops > 0 && report.matmul.iterations > 0);
  });

  it('prints a readable table', () => {
    const r = tpo(['doctor', '--bench-seconds', '0.1']);
    assert.equal(r.status, 0);
    for (const label of ['libtorch', 'build', 'device', 'threads', 'cpu capability', 'ffmpeg', 'matmul', '[ok  ] native addon']) {
      assert.ok(r.stdout.includes(label), `output shows ${label}:\n${r.stdout}`);
    }
  });

  it('sets the thread count from TPO_NUM_THREADS', () => {
    const r = tpo(['doctor', '--json', '--bench-seconds', '0'], { TPO_NUM_THREADS: '1' });
    assert.equal(JSON.parse(r.stdout).runtime.threads.intraOp, 1);
  });

  it('exits non-zero and says why when the addon cannot load', () => {
    const r = tpo(['doctor', '--bench-seconds', '0'], { TPO_ADDON: '/nonexistent/tpo.node' });
    assert.equal(r.status, 1);
    assert.match(r.stdout, /\[FAIL\] native addon: tpo: the native addon could not be loaded/);
  });
});

describe('tpo', () => {
  it('prints usage for an unknown command and exits 2', () => {
    const r = tpo(['frobnicate']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /tpo: unknown command 'frobnicate'/);
    assert.match(r.stderr, /usage: tpo <command>/);
  });

  it('rejects a bad option value', () => {
    const r = tpo(['doctor', '--bench-seconds', 'soon']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--bench-seconds must be a number/);
  });

  it('prints its version', () => {
    assert.match(tpo(['--version']).stdout, /^\d+\.\d+\.\d+\n$/);
  });
});
