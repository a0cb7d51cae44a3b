// A short, seeded run of the native fuzz cases (native-cases.ts), as a smoke test of the generators and of the
// native code they target: every case in one child process, each logged before it runs, so a signal or a hang
// names the case that caused it. `npm run fuzz` (scripts/fuzz.ts) runs many more of its own, each in a child.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { FIXTURES, removeDir, ROOT, runNode, tempDir } from '../helpers.js';
import { adapterCases, decodeSizeCases, modelCases, safetensorsCases, videoCases, type NativeCase } from './native-cases.js';

describe('native fuzz cases (smoke)', function () {
  this.timeout(600_000);
  let dir: string;
  before(() => {
    dir = tempDir('tpo-fuzz-smoke-');
  });
  after(() => removeDir(dir));

  it('no signal, no hang, and errors that name the file, over a seeded sample', () => {
    const small = join(dir, 'small.mp4');
    execFileSync('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=32x24:rate=4:duration=1', '-c:v', 'mpeg4', small]);
    const cases: NativeCase[] = [
      ...safetensorsCases(1, 40),
      ...modelCases(2, 16, FIXTURES),
      ...modelCases(3, 6, FIXTURES, 'longva'),
      ...adapterCases(4, 10),
      ...videoCases(5, 14),
      ...decodeSizeCases(6, 8, new Uint8Array(readFileSync(small))),
    ];
    const jobs = cases.map((c, i) => {
      const folder = join(dir, `case-${i}`);
      for (const [name, bytes] of Object.entries(c.files)) {
        mkdirSync(dirname(join(folder, name)), { recursive: true });
        writeFileSync(join(folder, name), bytes);
      }
      return { name: c.name, target: c.target, folder, path: join(folder, c.entry), call: c.call };
    });
    const code = `
      const tpo = { ...(await import(${JSON.stringify(join(ROOT, 'dist/lib/index.js'))})) };
      tpo.native = tpo.loadNative().addon;
      const fixtures = ${JSON.stringify(FIXTURES)};
      const out = [];
      for (const job of ${JSON.stringify(jobs)}) {
        process.stderr.write('case ' + job.name + '\\n');
        const path = job.path;
        try {
          await new Function('tpo', 'path', 'fixtures', 'return (async () => ' + job.call + ')()')(tpo, path, fixtures);
          out.push({ name: job.name, outcome: 'ok' });
        } catch (e) {
          out.push({ name: job.name, outcome: 'error', message: String(e.message), named: String(e.message).includes(job.folder) });
        }
      }
      console.log(JSON.stringify(out));
    `;
    const r = runNode(code, { timeout: 480_000, killSignal: 'SIGKILL', maxBuffer: 1 << 26 });
    const last = r.stderr.trim().split('\n').filter((l) => l.startsWith('case ')).pop();
    assert.equal(r.status, 0, `the child died or hung (status ${r.status}) at ${last}: ${r.stderr.slice(-1500)}`);
    const results = JSON.parse(r.stdout.trim().split('\n').pop()!) as { name: string; outcome: string; message?: string; named?: boolean }[];
    assert.equal(results.length, cases.length);
    // Errors about files name them; errors about a call's arguments or numbers (decode sizes, a model that loaded
    // but cannot score those ids) name the call instead.
    const unnamed = results.filter((x) => x.outcome === 'error' && !x.named && !/^decode-size/.test(x.name) &&
      !/^(Model\.|VideoLM\.|video options|decodeVideo|preprocess)/.test(x.message!));
    assert.deepEqual(unnamed.map((x) => `${x.name}: ${x.message}`), []);
    assert.ok(results.some((x) => x.outcome === 'ok') && results.some((x) => x.outcome === 'error'), 'both outcomes occur');
  });
});
