// Errors about data a user brought: each says where (file, line, field) so the fix is one edit away.

/** Where a record came from: its file and 1-based line (JSONL) or 0-based index (a JSON array file). */
export interface RecordSource {
  file: string;
  line?: number;
  index?: number;
}

export function describeSource(source: RecordSource): string {
  if (source.line !== undefined) return `${source.file}:${source.line}`;
  if (source.index !== undefined) return `${source.file}[${source.index}]`;
  return source.file;
}

/** A record that cannot be used: bad JSON, a missing or mistyped field, or a prompt too long to fit. */
export class DataError extends Error {
  readonly code = 'ERR_TPO_DATA';
  readonly file?: string;
  readonly line?: number;
  readonly index?: number;
  constructor(
    message: string,
    readonly source?: RecordSource,
    /** The field at fault (dotted path, as written in the file), when one is. */
    readonly field?: string,
  ) {
    super(
      (source ? `${describeSource(source)}: ` : '') + (field ? `${field}: ` : '') + message,
    );
    this.name = 'DataError';
    if (source) {
      this.file = source.file;
      if (source.line !== undefined) this.line = source.line;
      if (source.index !== undefined) this.index = source.index;
    }
  }
}

export interface MissingVideo {
  /** The path as resolved (relative to the dataset file or the video root). */
  path: string;
  /** The video as the record wrote it. */
  video: string;
  /** How many records use it, and the first of them. */
  records: number;
  firstSource: RecordSource;
  /** Set when the path exists but cannot be a video (a FIFO, a device). */
  problem?: string;
}

/** Every missing video of a dataset at once, so one pass fixes them all. */
export class MissingVideosError extends Error {
  readonly code = 'ERR_TPO_MISSING_VIDEOS';
  /** The message lists this many; `missing` holds all of them. */
  static readonly LISTED = 50;
  constructor(readonly missing: MissingVideo[]) {
    const listed = missing.slice(0, MissingVideosError.LISTED).map(
      (m) => `  ${m.path} (${m.records} record${m.records === 1 ? '' : 's'}, first at ${describeSource(m.firstSource)})` +
        (m.problem ? `: ${m.problem}` : ''),
    );
    const more = missing.length - listed.length;
    const what = missing.some((m) => m.problem) ? 'missing or unusable' : 'missing';
    super(
      `${missing.length} video${missing.length === 1 ? ' is' : 's are'} ${what}:\n${listed.join('\n')}` +
        (more > 0 ? `\n  … and ${more} more (error.missing lists all)` : ''),
    );
    this.name = 'MissingVideosError';
  }
}
