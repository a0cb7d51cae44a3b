// lib/index.ts: what `import ... from 'tpo'` gives, for each pipeline stage the README shows.
import assert from 'node:assert/strict';

import * as tpo from '../lib/index.js';

describe('the public API', () => {
  it('exports every stage: video, model, data, synthetic, tpo, train, eval, demo, report', () => {
    for (const name of [
      'decodeVideo', 'corruptFrames', 'VideoLM', 'Tokenizer', 'readPairs', 'encodePair', 'writeSynthDataset', 'generatePairs',
      'shuffledScenePlans', 'judgeSynthetic', 'ChatClient', 'Trainer', 'preferenceForward', 'evaluate', 'runDemo', 'trainBase',
      'writeReport', 'ProgressBar', 'convertDataset', 'readParquetValues', 'writeLmmsEval', 'TensorBoardWriter', 'needsReference',
      'Group', 'launchLocal', 'distEnv',
    ] as const) {
      assert.equal(typeof (tpo as Record<string, unknown>)[name], 'function', name);
    }
  });
});

describe('the library and the command line', () => {
  it('the library exports no CLI code: lib/index.ts imports nothing from lib/cli/', async () => {
    const { readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { ROOT } = await import('./helpers.js');
    const source = readFileSync(join(ROOT, 'lib', 'index.ts'), 'utf8');
    assert.deepEqual([...source.matchAll(/from '(\.\/cli\/[^']+)'/g)].map((m) => m[1]), []);
    for (const name of ['doctor', 'formatDuration', 'ModelSession', 'RunFolder', 'PathError', 'matchOption'] as const) {
      assert.equal(typeof (tpo as Record<string, unknown>)[name], 'function', name);
    }
  });
});
