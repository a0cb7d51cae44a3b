// The one flag parser of the `tpo` command: node:util's parseArgs with tpo's conventions. Number flags come back as
// numbers (NaN when not one, so the command's zod schema names the flag); a schema's error names flags, not fields;
// a command that needs --config says so as a usage error (exit 2, with the usage).
import { parseArgs } from 'node:util';

import type { z } from 'zod';

import { parse, ValidationError } from '../validate.js';

/** A command line that cannot be run as written: `tpo` prints the message and the usage, and exits with 2. */
export class UsageError extends Error {
  readonly code = 'ERR_TPO_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type FlagKind = 'string' | 'number' | 'boolean' | 'strings';

type FlagValue<K extends FlagKind> = K extends 'boolean' ? boolean : K extends 'number' ? number | undefined
  : K extends 'strings' ? string[] : string | undefined;

export type FlagValues<F extends Record<string, FlagKind>> = { [K in keyof F]: FlagValue<F[K]> };

/** A number as typed: a number, or NaN (not undefined) for text that is not one, so validation names the flag. */
function number(text: string | undefined): number | undefined {
  return text === undefined ? undefined : text.trim() === '' ? Number.NaN : Number(text);
}

/**
 * The flags of `argv` (and the positionals, when `positionals` allows them). Unknown flags and missing values are
 * parseArgs' errors (ERR_PARSE_ARGS_*), which `tpo` reports as usage errors.
 */
export function parseFlags<F extends Record<string, FlagKind>>(
  argv: string[], flags: F, options: { positionals?: boolean } = {},
): { values: FlagValues<F>; positionals: string[] } {
  const spec = Object.fromEntries(Object.entries(flags).map(([name, kind]) => [name, {
    type: kind === 'boolean' ? 'boolean' as const : 'string' as const,
    ...(kind === 'strings' ? { multiple: true } : {}),
  }]));
  const { values, positionals } = parseArgs({ args: argv, options: spec, allowPositionals: options.positionals ?? false });
  const out: Record<string, unknown> = {};
  for (const [name, kind] of Object.entries(flags)) {
    const value = values[name];
    out[name] = kind === 'number' ? number(value as string | undefined) : kind === 'boolean' ? value ?? false
      : kind === 'strings' ? value ?? [] : value;
  }
  return { values: out as FlagValues<F>, positionals };
}

/** The object without its undefined fields (flags not given), for a schema to fill its defaults. */
export function given(raw: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
}

/**
 * `raw` (built from flags) parsed by `schema`; a ValidationError names each field by its flag (`flagOf`: field ->
 * flag, e.g. videoRoot -> --video-root), so the message says what the user typed.
 */
export function parseFlagConfig<S extends z.ZodType>(
  schema: S, raw: Record<string, unknown>, command: string, flagOf: Record<string, string> = {},
): z.output<S> {
  try {
    return parse(schema, given(raw), command);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const issues = error.issues.map((i) => ({ ...i, path: i.path.map((p) => flagOf[String(p)] ?? p) }));
    throw new ValidationError(command, issues);
  }
}

/** The --config value of a config-file command, or a usage error saying it is needed. */
export function requireConfig(command: string, config: string | undefined): string {
  if (!config) throw new UsageError(`${command}: --config FILE is required`);
  return config;
}
