// What tpo runs on, and whether everything it needs is there (`tpo doctor` prints it).
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';

import { LIBTORCH_VERSION } from './libtorch.js';
import { type LoadedAddon, loadNative, type MatmulResult, type RuntimeInfo } from './native.js';
import { packageVersion } from './version.js';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** A failed required check makes `tpo doctor` exit non-zero. */
  required: boolean;
}

export interface DoctorReport {
  ok: boolean;
  tpoVersion: string;
  node: string;
  addon?: { path: string; kind: LoadedAddon['kind'] };
  libtorch?: { version: string; dir: string; source: string };
  runtime?: RuntimeInfo;
  matmul?: MatmulResult;
  /** The c10d backends built in (lib/dist). */
  distributed?: { gloo: boolean; nccl: boolean };
  checks: DoctorCheck[];
}

function ffmpegCli(): string | undefined {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-version'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.split('\n')[0] : undefined;
}

export async function doctor(options: { benchSeconds?: number } = {}): Promise<DoctorReport> {
  const report: DoctorReport = { ok: false, tpoVersion: packageVersion(), node: process.version, checks: [] };
  const check = (name: string, ok: boolean, detail: string, required = true) =>
    report.checks.push({ name, ok, detail, required });

  let loaded: LoadedAddon | undefined;
  try {
    loaded = loadNative();
    check('native addon', true, `${loaded.kind}: ${loaded.path}`);
  } catch (error) {
    check('native addon', false, error instanceof Error ? error.message : String(error));
  }
  if (loaded) {
    const runtime = loaded.addon.runtimeInfo();
    report.addon = { path: loaded.path, kind: loaded.kind };
    report.runtime = runtime;
    const libDir = dirname(runtime.libtorchPath);
    report.libtorch = {
      version: runtime.torchVersion,
      dir: dirname(libDir),
      source: loaded.libtorch?.source ?? (loaded.kind === 'source' ? 'linked at build time' : loaded.kind),
    };
    check(
      'libtorch',
      runtime.torchVersion.startsWith('2.'),
      `${runtime.torchVersion} at ${dirname(libDir)}` +
        (runtime.torchVersion === LIBTORCH_VERSION ? '' : ` (tpo is tested with ${LIBTORCH_VERSION})`),
    );
    const libs = runtime.ffmpeg.libraries.map((l) => `${l.name} ${l.version}`).join(', ');
    check('FFmpeg libraries', true, `${runtime.ffmpeg.version}: ${libs}`);
    // Multi-process runs (--nproc, torchrun): c10d's backends compiled into this build.
    const backends = typeof loaded.addon.distBackends === 'function' ? loaded.addon.distBackends() : { gloo: false, nccl: false };
    report.distributed = backends;
    check('distributed backends', backends.gloo,
      `gloo ${backends.gloo ? 'yes' : 'no'}, nccl ${backends.nccl ? 'yes' : 'no (a CPU build, or built without nccl.h)'}`, false);
    report.matmul = await loaded.addon.benchMatmul(1024, options.benchSeconds ?? 1);
  }
  const cli = ffmpegCli();
  check('ffmpeg command', cli !== undefined, cli ?? 'not found (only the tests need it: apt-get install ffmpeg)', false);
  report.ok = report.checks.every((c) => c.ok || !c.required);
  return report;
}

export function formatDoctor(r: DoctorReport): string {
  const lines: string[] = [];
  const row = (k: string, v: string) => lines.push(`${k.padEnd(18)} ${v}`);
  row('tpo', r.tpoVersion);
  row('node', r.node);
  if (r.addon) row('addon', `${r.addon.kind} ${r.addon.path}`);
  if (r.libtorch) row('libtorch', `${r.libtorch.version} at ${r.libtorch.dir} (${r.libtorch.source})`);
  if (r.runtime) {
    const rt = r.runtime;
    row('device', rt.cuda.available ? `CUDA, ${rt.cuda.deviceCount} device(s)` : `CPU${rt.cuda.built ? ' (CUDA build, no GPU)' : ''}`);
    row('threads', `${rt.threads.intraOp} intra-op, ${rt.threads.interOp} inter-op, ${rt.threads.cores} cores available`);
    row('cpu capability', rt.cpuCapability);
    row('ffmpeg', `${rt.ffmpeg.version} (${rt.ffmpeg.libraries.map((l) => `${l.name} ${l.version}`).join(', ')})`);
  }
  if (r.matmul) {
    const m = r.matmul;
    row('matmul', `${m.gflops.toFixed(1)} GFLOP/s (float32 ${m.size}x${m.size}, ${m.iterations} in ${m.seconds.toFixed(2)} s)`);
  }
  lines.push('');
  for (const c of r.checks) {
    const mark = c.ok ? 'ok  ' : c.required ? 'FAIL' : 'warn';
    lines.push(`[${mark}] ${c.name}: ${c.detail}`);
  }
  return lines.join('\n');
}
