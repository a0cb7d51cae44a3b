// Measures the peak memory of one training step in a child process, for the memory planner's checks: the model is
// created from a config (random weights), a LoRA adapter added or the language model trained in full, one warm-up
// step creates the optimizer's state, then the peak resident set of a second step over the process's resident set
// before it. glibc is told to return large blocks to the system at once (a fixed mmap threshold), so freed
// activations of the first step do not hide in the heap.
import { join } from 'node:path';

import { ROOT, runNode } from '../helpers.js';

export interface MeasureCase {
  config: Record<string, unknown>;
  frames: number;
  promptTokens: number;
  answerTokens: number;
  pairs: number;
  lora?: { r: number };
  checkpointing: boolean;
}

/** Bytes the second step's peak adds to the process (VmHWM after clear_refs, minus VmRSS before the step). */
export function measureStepPeak(c: MeasureCase): number {
  const dist = JSON.stringify(join(ROOT, 'dist', 'lib'));
  const code = `
    import { readFileSync, writeFileSync } from 'node:fs';
    const lib = ${dist};
    const { VideoLM } = await import(lib + '/model/video-lm.js');
    const { Optimizer } = await import(lib + '/train/optimizer.js');
    const { tensor } = await import(lib + '/tensor.js');
    const c = ${JSON.stringify(c)};
    const kb = (key) => Number(/\\d+/.exec(readFileSync('/proc/self/status', 'utf8').split('\\n').find((l) => l.startsWith(key)))[0]) * 1024;
    const model = await VideoLM.create(c.config, { seed: 1 });
    if (c.lora) { model.addLora({ r: c.lora.r, alpha: 2 * c.lora.r }); model.setTrainable({ lora: true }); }
    else model.setTrainable({ language: true });
    model.setGradientCheckpointing(c.checkpointing);
    const vocab = c.config.vocab_size;
    const ids = (n, seed) => tensor(BigInt64Array.from({ length: n }, (_, i) => BigInt(3 + ((i * 7 + seed) % (vocab - 3)))), [n]);
    // Each pair about a video of its own (the planner's case), its prompt: 4 tokens, the video, its question.
    const size = c.config.vision_config.image_size;
    const pairs = Array.from({ length: c.pairs }, (_, p) => {
      const pixels = tensor(Float32Array.from({ length: c.frames * 3 * size * size }, (_, i) => Math.sin(i + p) * 0.5), [c.frames, 3, size, size]);
      const prompt = ids(c.promptTokens, p);
      const withImage = tensor(BigInt64Array.from([...prompt.toTypedArray().slice(0, 4), -200n, ...prompt.toTypedArray().slice(4)]), [c.promptTokens + 1]);
      return { prompt: withImage, chosen: ids(c.answerTokens, 11 + p), rejected: ids(c.answerTokens, 29 + p), video: pixels };
    });
    const optimizer = new Optimizer(model);
    const step = () => optimizer.preferenceStep({ microBatches: [pairs], lr: 1e-4, loss: { beta: 0.1, referenceFree: !c.lora }, referenceMode: c.lora ? 'lora-disabled' : 'none' });
    await step();
    writeFileSync('/proc/self/clear_refs', '5');
    const before = kb('VmRSS');
    await step();
    console.log(JSON.stringify({ peak: kb('VmHWM') - before }));`;
  const r = runNode(code, {
    env: { ...process.env, TPO_NUM_THREADS: '1', MALLOC_MMAP_THRESHOLD_: '65536', MALLOC_TRIM_THRESHOLD_: '0', TPO_ADDON: process.env.TPO_ADDON },
    timeout: 600_000,
  });
  if (r.status !== 0) throw new Error(`measuring step peak failed (${r.status}): ${r.stderr}`);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { peak: number }).peak;
}
