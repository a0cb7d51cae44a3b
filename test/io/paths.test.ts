// native/io/paths.h and its callers: a FIFO, a device or a /proc file given where a checkpoint, config, adapter,
// video or output file belongs. open(2) of a FIFO waits for a writer and FFmpeg reads a device forever, so each case
// runs in a child process with a deadline: a hang fails the test instead of hanging the suite. The library's entry
// points check paths first (lib/paths.ts, test/paths.test.ts); these cases call the addon itself (`addon`), so the
// native checks are what they meet, plus a few through the library to show both refuse.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { FIXTURES, removeDir, ROOT, runNode, tempDir } from '../helpers.js';

const HF = join(FIXTURES, 'hf');

/** Runs each case (an async function body using `tpo`) in one child; returns what each threw, or 'ok'. */
function outcomes(cases: Record<string, string>): Record<string, string> {
  const code = `
    const tpo = await import(${JSON.stringify(join(ROOT, 'dist/lib/index.js'))});
    const addon = (await import(${JSON.stringify(join(ROOT, 'dist/lib/native.js'))})).native();
    const out = {};
    for (const [name, body] of Object.entries(${JSON.stringify(cases)})) {
      try {
        await new Function('tpo', 'addon', 'return (async () => {' + body + '})()')(tpo, addon);
        out[name] = 'ok';
      } catch (e) {
        out[name] = String(e.message);
      }
    }
    console.log(JSON.stringify(out));
    process.exit(0);
  `;
  const r = runNode(code, { timeout: 60_000, killSignal: 'SIGKILL' });
  assert.equal(r.status, 0, `the child hung or died (status ${r.status}): ${r.stderr.slice(-1500)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, string>;
}

describe('paths that are not regular files', function () {
  this.timeout(120_000);
  let dir: string;
  let fifo: string;
  before(() => {
    dir = tempDir('tpo-paths-');
    fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
  });
  after(() => removeDir(dir));

  it('are refused, naming the path and what it is, when read as checkpoints, configs, adapters or videos', () => {
    // A model folder whose config.json, then whose weights, is a FIFO; an adapter folder whose config is one.
    const configFifo = join(dir, 'config-fifo');
    const weightsFifo = join(dir, 'weights-fifo');
    const adapterFifo = join(dir, 'adapter-fifo');
    mkdirSync(configFifo);
    mkdirSync(weightsFifo);
    mkdirSync(adapterFifo);
    execFileSync('mkfifo', [join(configFifo, 'config.json'), join(weightsFifo, 'model.safetensors'), join(adapterFifo, 'adapter_config.json')]);
    copyFileSync(join(HF, 'qwen2', 'config.json'), join(weightsFifo, 'config.json'));
    const q = (s: string) => JSON.stringify(s);
    const got = outcomes({
      safetensors: `await addon.safetensorsRead(${q(fifo)})`,
      safetensorsHeader: `await addon.safetensorsHeader(${q(fifo)})`,
      device: `await addon.safetensorsRead('/dev/zero')`,
      procFile: `await addon.safetensorsRead('/proc/self/status')`,
      config: `await addon.modelLoad(${q(configFifo)})`,
      weights: `await addon.modelLoad(${q(weightsFifo)})`,
      notAFolder: `await addon.modelLoad(${q(fifo)})`,
      adapter: `const m = await addon.modelLoad(${q(join(HF, 'qwen2'))}); await m.loadLora(${q(adapterFifo)})`,
      decode: `await addon.videoDecode(${q(fifo)}, { kind: 'uniform', frames: 2 })`,
      probe: `await addon.videoProbe(${q(fifo)})`,
      decodeDevice: `await addon.videoDecode('/dev/zero', { kind: 'uniform', frames: 2 })`,
      decodeProc: `await addon.videoDecode('/proc/self/status', { kind: 'uniform', frames: 2 })`,
      // Through the library: its own check refuses first.
      librarySafetensors: `await tpo.readSafetensors(${q(fifo)})`,
      libraryWeights: `await tpo.VideoLM.load(${q(weightsFifo)})`,
      libraryDecode: `await tpo.decodeVideo(${q(fifo)}, { kind: 'uniform', frames: 2 })`,
    });
    const fifoKind = /is a FIFO \(named pipe\), not a (regular|video) file/;
    for (const name of ['safetensors', 'safetensorsHeader', 'decode', 'probe']) {
      assert.match(got[name]!, fifoKind, `${name}: ${got[name]}`);
      assert.ok(got[name]!.includes(fifo), `${name} names the path: ${got[name]}`);
    }
    assert.match(got.device!, /\/dev\/zero: is a character device, not a regular file/);
    assert.match(got.procFile!, /\/proc\/self\/status: too short for a safetensors file \(0 bytes/);
    assert.match(got.config!, new RegExp(`${join(configFifo, 'config.json')}: is a FIFO`));
    assert.match(got.weights!, new RegExp(`${join(weightsFifo, 'model.safetensors')}: is a FIFO`));
    assert.match(got.notAFolder!, /not a model folder \(a FIFO/);
    assert.match(got.adapter!, new RegExp(`${join(adapterFifo, 'adapter_config.json')}: is a FIFO`));
    assert.match(got.decodeDevice!, /\/dev\/zero: is a character device, not a video file/);
    assert.match(got.decodeProc!, /\/proc\/self\/status: is empty \(0 bytes\)/);
    for (const name of ['librarySafetensors', 'libraryWeights', 'libraryDecode']) {
      assert.match(got[name]!, /: is a FIFO \(named pipe\)/, `${name}: ${got[name]}`);
      assert.ok(got[name]!.includes(name === 'libraryWeights' ? join(weightsFifo, 'model.safetensors') : fifo), `${name}: ${got[name]}`);
    }
  });

  it('are refused as outputs before anything is written, and a /proc folder fails at once', () => {
    const folder = join(dir, 'a-folder');
    mkdirSync(folder);
    const q = (s: string) => JSON.stringify(s);
    const got = outcomes({
      safetensorsToFifo: `await addon.safetensorsWrite(${q(fifo)}, { w: tpo.tensor(new Float32Array(4)) })`,
      safetensorsToFolder: `await addon.safetensorsWrite(${q(folder)}, { w: tpo.tensor(new Float32Array(4)) })`,
      saveToProc: `const m = await addon.modelLoad(${q(join(HF, 'qwen2'))}); await m.save('/proc/self/tpo-model')`,
      safetensorsToProc: `await addon.safetensorsWrite('/proc/self/x.safetensors', { w: tpo.tensor(new Float32Array(4)) })`,
      libraryToFifo: `await tpo.writeSafetensors(${q(fifo)}, { w: tpo.tensor(new Float32Array(4)) })`,
    });
    assert.match(got.safetensorsToFifo!, /is a FIFO \(named pipe\), not a regular file; it was not written/);
    assert.match(got.safetensorsToFolder!, /a-folder: is a folder; a file was to be written there/);
    assert.notEqual(got.saveToProc, 'ok');
    assert.match(got.saveToProc!, /\/proc\/self\/tpo-model/);
    assert.notEqual(got.safetensorsToProc, 'ok');
    assert.match(got.safetensorsToProc!, /\/proc\/self\/x\.safetensors/);
    assert.match(got.libraryToFifo!, /fifo: is a FIFO \(named pipe\)/);
  });

  it('an encoder output that is a FIFO is refused, not replaced', () => {
    const target = join(dir, 'out.mp4');
    execFileSync('mkfifo', [target]);
    const got = outcomes({
      encode: `await addon.videoEncode(tpo.tensor(new Uint8Array(2 * 4 * 4 * 3), [2, 4, 4, 3]), ${JSON.stringify(target)}, { fps: 4, codec: 'mpeg4' })`,
    });
    assert.match(got.encode!, /out\.mp4: is a FIFO \(named pipe\), not a regular file/);
  });
});
