// zod at every edge a user touches: one way to turn a failed parse into an error that names the field.
import type { z } from 'zod';

export class ValidationError extends TypeError {
  readonly code = 'ERR_TPO_ARGUMENT';
  constructor(readonly what: string, readonly issues: z.core.$ZodIssue[]) {
    super(
      `${what}: ` +
        issues.map((i) => `${i.path.length ? `${i.path.map(String).join('.')}: ` : ''}${i.message}`).join('; '),
    );
    this.name = 'ValidationError';
  }
}

/** `schema.parse(value)`, failing with a ValidationError that starts with `what` (a function, file or field). */
export function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ValidationError(what, result.error.issues);
  return result.data;
}
