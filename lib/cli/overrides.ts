// Config files for the config-file commands (train, generate), and `--set FIELD=VALUE` on top of them.
import { readFile } from 'node:fs/promises';

import { checkInputFile, PathError } from '../paths.js';

/** The JSON config in `file` (an error names the file) with each `--set` applied in order. */
export async function readConfigFile(file: string, assignments: readonly string[] = []): Promise<Record<string, unknown>> {
  let config: Record<string, unknown>;
  try {
    checkInputFile(file, 'a config file');
    config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`${file}: ${error instanceof PathError ? error.reason : (error as Error).message}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new Error(`${file}: a config must be a JSON object`);
  for (const assignment of assignments) applyOverride(config, assignment);
  return config;
}

/** Sets `a.b` of `config` (in place) to the JSON value after `=`; a value that is not JSON is a string. */
export function applyOverride(config: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq < 1) throw new Error(`--set ${assignment}: expected FIELD=VALUE`);
  const path = assignment.slice(0, eq).split('.');
  const text = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = text;
  }
  let node = config;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1)!] = value;
}
