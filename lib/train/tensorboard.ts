// Training curves as TensorBoard event files, beside metrics.jsonl: `events.out.tfevents.<time>.<host>.<pid>` holding
// tensorflow.Event protos (encoded with protobufjs from the message definitions below, as TensorFlow's
// event.proto and summary.proto define them) in TFRecord framing (length, masked CRC32C of the length, data,
// masked CRC32C of the data). Tags are the Hugging Face Trainer's TensorBoardCallback names for TRL's metrics:
// train/loss, train/rewards/accuracies, ..., train/learning_rate, train/epoch, eval/... .
import { randomInt } from 'node:crypto';
import { type FileHandle, open, readdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

import protobuf from 'protobufjs';

// The fields of tensorflow/core/util/event.proto and tensorflow/core/framework/summary.proto that scalars use (their
// numbers as tensorboard.compat.proto's descriptors give them).
const PROTO = `
syntax = "proto3";
package tensorflow;
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    Summary summary = 5;
    SessionLog session_log = 7;
  }
}
message SessionLog {
  enum SessionStatus { STATUS_UNSPECIFIED = 0; START = 1; STOP = 2; CHECKPOINT = 3; }
  SessionStatus status = 1;
  string checkpoint_path = 2;
  string msg = 3;
}
message Summary {
  message Value {
    string node_name = 7;
    string tag = 1;
    oneof value { float simple_value = 2; }
  }
  repeated Value value = 1;
}
`;
const Event = protobuf.parse(PROTO).root.lookupType('tensorflow.Event');

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord checksums use it.
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) crc = CRC_TABLE[(crc ^ b) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15 and add a constant, so a CRC of data holding CRCs stays strong. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: the data's length, its masked CRC, the data, the data's masked CRC. */
export function tfRecord(data: Uint8Array): Buffer {
  const header = Buffer.alloc(12);
  header.writeBigUInt64LE(BigInt(data.length), 0);
  header.writeUInt32LE(maskedCrc32c(header.subarray(0, 8)), 8);
  const footer = Buffer.alloc(4);
  footer.writeUInt32LE(maskedCrc32c(data), 0);
  return Buffer.concat([header, data, footer]);
}

/** A metrics.jsonl name as the Hugging Face Trainer's TensorBoard callback tags it (rewrite_logs). */
export function tensorboardTag(name: string): string {
  if (name === 'lr') return 'train/learning_rate';
  if (name.startsWith('eval/')) return name;
  if (name.startsWith('eval_')) return `eval/${name.slice('eval_'.length)}`;
  return `train/${name}`;
}

const EVENTS_FILE = /^events\.out\.tfevents\./;

export class TensorBoardWriter {
  private constructor(readonly file: string, private readonly handle: FileHandle) {}

  /**
   * A new event file in `dir`. `resumeStep`: this run continues from that step, so TensorBoard drops what earlier
   * files logged after it (a SessionLog START at that step, as PyTorch's SummaryWriter(purge_step) writes); without
   * it the run starts afresh and earlier event files in `dir` are removed.
   */
  static async open(dir: string, options: { resumeStep?: number } = {}): Promise<TensorBoardWriter> {
    const existing = (await readdir(dir)).filter((name) => EVENTS_FILE.test(name));
    if (options.resumeStep === undefined) for (const name of existing) await rm(join(dir, name), { force: true });
    const now = Date.now() / 1000;
    // TensorBoard reads a folder's files in name order: the time in the name is past every earlier file's, so a
    // resumed run's file comes after the one it continues even within the same second.
    const latest = options.resumeStep === undefined ? 0 : Math.max(0, ...existing.map((n) => Number(n.split('.')[3]) || 0));
    const seconds = Math.max(Math.floor(now), latest + 1);
    const file = join(dir, `events.out.tfevents.${seconds}.${hostname()}.${process.pid}.${randomInt(1 << 30)}`);
    const writer = new TensorBoardWriter(file, await open(file, 'a'));
    await writer.#write({ wallTime: now, step: 0, fileVersion: 'brain.Event:2' });
    // TensorBoard purges what earlier files hold at steps >= a START's step: the resumed run logs from resumeStep + 1.
    if (options.resumeStep !== undefined) await writer.#write({ wallTime: now, step: options.resumeStep + 1, sessionLog: { status: 1 } });
    return writer;
  }

  async #write(event: Record<string, unknown>): Promise<void> {
    const bytes = Event.encode(Event.fromObject(event)).finish();
    await this.handle.write(tfRecord(bytes));
  }

  /** One event at `step` with a scalar per finite metric. */
  async scalars(step: number, metrics: Record<string, number>, wallTime = Date.now() / 1000): Promise<void> {
    const value = Object.entries(metrics)
      .filter(([, v]) => typeof v === 'number' && Number.isFinite(v))
      .map(([name, v]) => ({ tag: tensorboardTag(name), simpleValue: v }));
    if (value.length) await this.#write({ wallTime, step, summary: { value } });
  }

  async close(): Promise<void> {
    await this.handle.sync();
    await this.handle.close();
  }
}
