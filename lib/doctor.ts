// What tpo runs on, and whether everything it needs is there (`tpo doctor` prints it).
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';

import { inspectLibtorch, TESTED_LIBTORCH_VERSIONS } from './libtorch.js';
import { type LoadAttempt, type LoadedAddon, loadNative, type MatmulResult, nvidiaDriver, type RuntimeInfo } from './native.js';
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
  addon?: { path: string; kind: LoadedAddon['kind']; variant?: LoadedAddon['variant']; skipped: LoadAttempt[] };
  libtorch?: { version: string; dir: string; source: string; variant: 'cpu' | 'cuda' };
  /** The NVIDIA driver's version line, and the GPUs nvidia-smi lists (name, memory), when there are any. */
  gpu?: { driver?: string; devices: string[] };
  runtime?: RuntimeInfo;
  matmul?: MatmulResult;
  /** The c10d backends built in (lib/dist). */
  distributed?: { gloo: boolean; nccl: boolean };
  checks: DoctorCheck[];
}

/** GPUs as nvidia-smi names them ("NVIDIA H200, 143771 MiB"); none when it is missing or sees none. */
function nvidiaSmiDevices(): string[] {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader'], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return [];
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

function cudaVersionText(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
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
    report.addon = { path: loaded.path, kind: loaded.kind, variant: loaded.variant, skipped: loaded.skipped };
    report.runtime = runtime;
    const libDir = dirname(runtime.libtorchPath);
    const inspected = inspectLibtorch(dirname(libDir), 'LIBTORCH');
    report.libtorch = {
      version: runtime.torchVersion,
      dir: dirname(libDir),
      source: loaded.libtorch?.source ?? (loaded.kind === 'source' ? 'linked at build time' : loaded.kind),
      variant: 'problem' in inspected ? (runtime.cuda.built ? 'cuda' : 'cpu') : inspected.variant,
    };
    check(
      'libtorch',
      runtime.torchVersion.startsWith('2.'),
      `${runtime.torchVersion} at ${dirname(libDir)}` +
        (TESTED_LIBTORCH_VERSIONS.includes(runtime.torchVersion) ? '' : ` (tpo is tested with ${TESTED_LIBTORCH_VERSIONS.join(' and ')})`),
    );
    const libs = runtime.ffmpeg.libraries.map((l) => `${l.name} ${l.version}`).join(', ');
    check('FFmpeg libraries', true, `${runtime.ffmpeg.version}: ${libs}`);
    const driver = nvidiaDriver();
    report.gpu = { driver, devices: driver ? nvidiaSmiDevices() : [] };
    if (runtime.cuda.built) {
      check(
        'CUDA',
        runtime.cuda.available || !driver,
        runtime.cuda.available
          ? `${runtime.cuda.deviceCount} device(s) seen by libtorch (CUDA runtime ${cudaVersionText(runtime.cuda.runtimeVersion)})`
          : driver
            ? `an NVIDIA driver is loaded (${driver}) but libtorch sees no CUDA device: the driver may be older than CUDA ${cudaVersionText(runtime.cuda.runtimeVersion)} needs`
            : 'a CUDA build on a machine without an NVIDIA driver: it runs on the CPU',
        false,
      );
    } else if (driver) {
      check('CUDA', false, `an NVIDIA driver is loaded (${driver}) but this addon is a CPU build: bash scripts/build-cuda.sh, or a CUDA prebuild`, false);
    }
    // Multi-process runs (--nproc, torchrun): c10d's backends compiled into this build.
    const backends = typeof loaded.addon.distBackends === 'function' ? loaded.addon.distBackends() : { gloo: false, nccl: false };
    report.distributed = backends;
    check('distributed backends', backends.gloo,
      `gloo ${backends.gloo ? 'yes' : 'no'}, nccl ${backends.nccl ? 'yes' : 'no (a CPU build, or a CUDA build without NCCL\'s headers)'}`, false);
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
  if (r.addon) row('addon', `${r.addon.kind}${r.addon.variant ? ` (${r.addon.variant})` : ''} ${r.addon.path}`);
  for (const s of r.addon?.skipped ?? []) row('  passed over', `${s.candidate}: ${s.reason}`);
  if (r.libtorch) row('libtorch', `${r.libtorch.version} ${r.libtorch.variant} at ${r.libtorch.dir} (${r.libtorch.source})`);
  if (r.runtime) {
    const rt = r.runtime;
    const build = rt.cuda.built
      ? `CUDA build (CUDA runtime ${cudaVersionText(rt.cuda.runtimeVersion)}${rt.cuda.cudnnVersion ? `, cuDNN ${rt.cuda.cudnnVersion}` : ''})`
      : 'CPU build';
    row('build', build);
    row('device', rt.cuda.available ? `CUDA, ${rt.cuda.deviceCount} device(s) seen by libtorch` : `CPU${rt.cuda.built ? ' (no CUDA device seen)' : ''}`);
    if (r.gpu?.driver) row('nvidia driver', r.gpu.driver);
    for (const d of r.gpu?.devices ?? []) row('  gpu', d);
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
