// lib/data/jsonl.ts writers: atomic writes, and appends that never leave a torn last line behind.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { JsonlAppender, LineSplitter, readJsonValues, writeJsonl } from '../../lib/data/jsonl.js';
import { removeDir, tempDir } from '../helpers.js';

async function values(file: string): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const item of readJsonValues(file)) {
    if (item instanceof Error) throw item;
    out.push(item.value);
  }
  return out;
}

describe('JSONL writing', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  it('writeJsonl writes one record a line, strings with newlines included, and leaves no temporary file', async () => {
    const file = join(dir, 'out.jsonl');
    const records = [{ a: 1, text: 'two\nlines\r\nand ünïcode 🎬 \u2028' }, [1, 2], 'plain', null];
    assert.equal(await writeJsonl(file, records), 4);
    assert.equal(readFileSync(file, 'utf8').split('\n').length, 5); // four lines and the final newline
    assert.deepEqual(await values(file), records);
    assert.deepEqual(readdirSync(dir), ['out.jsonl']);
  });

  it('writeJsonl takes an async iterable, and leaves the old file whole when it fails midway', async () => {
    const file = join(dir, 'out.jsonl');
    await writeJsonl(file, [{ version: 1 }]);
    async function* failing() {
      yield { version: 2 };
      throw new Error('generator broke');
    }
    await assert.rejects(writeJsonl(file, failing()), /generator broke/);
    assert.deepEqual(await values(file), [{ version: 1 }]);
    assert.deepEqual(readdirSync(dir), ['out.jsonl']);
    await assert.rejects(writeJsonl(file, [undefined]), /cannot write undefined as a JSON line/);
    async function* fine() {
      yield { version: 3 };
    }
    await writeJsonl(file, fine());
    assert.deepEqual(await values(file), [{ version: 3 }]);
  });

  it('JsonlAppender creates the file and appends whole lines', async () => {
    const file = join(dir, 'log.jsonl');
    const a = await JsonlAppender.open(file);
    assert.equal(a.repaired, null);
    await a.append({ step: 1 });
    await a.append({ step: 2 }, { step: 3 });
    await a.close();
    await using b = await JsonlAppender.open(file);
    await b.append({ step: 4 });
    await b.sync();
    assert.deepEqual(await values(file), [{ step: 1 }, { step: 2 }, { step: 3 }, { step: 4 }]);
  });

  it('cuts off a line torn by a crash before appending, and says what it cut', async () => {
    const file = join(dir, 'pairs.jsonl');
    writeFileSync(file, '{"id": 1}\n{"id": 2}\n{"id": 3, "chos');
    const a = await JsonlAppender.open(file);
    assert.deepEqual(a.repaired, { action: 'removed', bytes: 15, text: '{"id": 3, "chos' });
    await a.append({ id: 3 });
    await a.close();
    assert.equal(readFileSync(file, 'utf8'), '{"id": 1}\n{"id": 2}\n{"id":3}\n');
  });

  it('ends a whole last line that lacks only its newline, rather than dropping it', async () => {
    const file = join(dir, 'pairs.jsonl');
    writeFileSync(file, '{"id": 1}\n{"id": 2}');
    const a = await JsonlAppender.open(file);
    assert.deepEqual(a.repaired, { action: 'terminated', bytes: 9, text: '{"id": 2}' });
    await a.append({ id: 3 });
    await a.close();
    assert.deepEqual(await values(file), [{ id: 1 }, { id: 2 }, { id: 3 }]);
  });

  it('repairs a torn line longer than its scan block, and a file that is one torn line', async () => {
    const file = join(dir, 'big.jsonl');
    const torn = '{"text": "' + 'x'.repeat(200_000);
    writeFileSync(file, '{"id": 1}\n' + torn);
    const a = await JsonlAppender.open(file);
    assert.deepEqual([a.repaired!.action, a.repaired!.bytes], ['removed', torn.length]);
    await a.close();
    assert.equal(readFileSync(file, 'utf8'), '{"id": 1}\n');

    const only = join(dir, 'only.jsonl');
    writeFileSync(only, '{"half');
    const b = await JsonlAppender.open(only);
    await b.close();
    assert.equal(readFileSync(only, 'utf8'), '');
  });
});

describe('JSONL reading is linear in the file size', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = tempDir();
  });
  after(() => removeDir(dir));

  it('LineSplitter: a 10 MB and a 40 MB line cost at most twice their length in work, fed in 64 KiB chunks', () => {
    const chunk = 'x'.repeat(64 * 1024);
    for (const mb of [10, 40]) {
      const splitter = new LineSplitter();
      const chunks = (mb * 1024 * 1024) / chunk.length;
      for (let i = 0; i < chunks; i++) assert.deepEqual(splitter.push(chunk), []);
      const [line] = splitter.push('\n');
      assert.equal(line!.length, chunks * chunk.length);
      assert.ok(splitter.work <= 2 * (line!.length + 1), `${mb} MB: ${splitter.work} characters of work`);
    }
    const s = new LineSplitter();
    assert.deepEqual([...s.push('a\nb'), ...s.push('c\n\nd'), s.end()], ['a', 'bc', '', 'd']);
  });

  it('readJsonValues: a 40 MB line takes about four times the CPU of a 10 MB one, not sixteen', async () => {
    const write = (mb: number) => {
      const file = join(dir, `line-${mb}.jsonl`);
      writeFileSync(file, `{"id": 1, "text": "${'y'.repeat(mb * 1024 * 1024)}"}\n{"id": 2}\n`);
      return file;
    };
    const cpu = async (file: string) => {
      let best = Infinity;
      for (let round = 0; round < 2; round++) {
        const started = process.cpuUsage();
        const got = await values(file);
        const used = process.cpuUsage(started);
        assert.equal(got.length, 2);
        best = Math.min(best, used.user + used.system);
      }
      return best;
    };
    const small = await cpu(write(10));
    const large = await cpu(write(40));
    // Linear reading gives a ratio near 4; re-splitting the carry on every chunk gave 16 (10 s for 50 MB).
    assert.ok(large / small < 10, `40 MB took ${(large / small).toFixed(1)}x the CPU of 10 MB`);
  });
});
