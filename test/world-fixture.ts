// A small synthetic world (real encoded videos, the world's tokenizer) with a tiny LLaVA-Video model of seeded
// random weights: what the training and generation tests run on.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { VideoLM } from '../lib/model/video-lm.js';
import { writeSynthDataset } from '../lib/synthetic/index.js';

export async function makeWorld(dir: string, videos = 8): Promise<{ model: string; benchmark: string }> {
  await writeSynthDataset({ out: dir, videos, seed: 3, world: { length: 'short' }, concurrency: 2 });
  const config = JSON.parse(readFileSync(join(dir, 'model', 'config.json'), 'utf8'));
  using model = await VideoLM.create(config, { seed: 1 });
  await model.save(join(dir, 'model'));
  return { model: join(dir, 'model'), benchmark: join(dir, 'train-benchmark.jsonl') };
}
