// TensorBoard's own reader (tensorboard.backend.event_processing.event_accumulator.EventAccumulator, from the
// bench venv) run on a folder of event files: every scalar tag's (step, value) list. Undefined without the venv.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const TENSORBOARD_PYTHON = process.env.TPO_BENCH_PYTHON ?? join(homedir(), '.cache', 'tpo', 'bench-venv', 'bin', 'python');

const READER = `
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}))
`;

/** Why TensorBoard's reader cannot run here, or undefined when it can. */
export function tensorboardUnavailable(): string | undefined {
  if (!existsSync(TENSORBOARD_PYTHON)) return `no Python venv with tensorboard at ${TENSORBOARD_PYTHON} (bash scripts/bench/setup-venv.sh makes one)`;
  const r = spawnSync(TENSORBOARD_PYTHON, ['-c', 'import tensorboard'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `${TENSORBOARD_PYTHON} cannot import tensorboard: ${r.stderr.trim().split('\n').at(-1)}`;
}

export function readScalars(dir: string): Record<string, [number, number][]> {
  const r = spawnSync(TENSORBOARD_PYTHON, ['-c', READER, dir], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`EventAccumulator failed on ${dir}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, [number, number][]>;
}
