// The soak benchmark (`npm run soak`): does memory stay flat over a long run, and does the event loop stay free?
//
//   node dist/scripts/soak.js [--steps 1000] [--calls 1000] [--out soak-out]
//
// On the synthetic world's tiny LLaVA-Video model: `steps` TPO training steps (Trainer.fit with LoRA, the real
// loop: batches, metrics.jsonl, checkpoints), then `calls` generate calls on one video's visual tokens. RSS is
// sampled as they run; the figure is the slope of a least-squares line through the samples after a warm-up (the
// first tenth), in MiB per 1,000 steps or calls. The event loop's lag during training is measured with
// perf_hooks.monitorEventLoopDelay (p50, p99, max, beyond its sampling interval). Live tensor handles are counted before and after.
// The results go to <out>/soak.json and stdout.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

import { parseFlags } from '../lib/cli/flags.js';
import { writeJsonl } from '../lib/data/jsonl.js';
import { readBenchmark } from '../lib/data/records.js';
import { ModelSession } from '../lib/model/session.js';
import { VideoLM } from '../lib/model/video-lm.js';
import { formatDuration } from '../lib/progress.js';
import { writeSynthDataset } from '../lib/synthetic/dataset.js';
import { tensorMemory } from '../lib/tensor.js';
import { Trainer } from '../lib/train/trainer.js';

const MiB = 2 ** 20;
/** The event-loop delay monitor's sampling interval. */
const RESOLUTION_MS = 10;

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return sxx ? sxy / sxx : 0;
}

interface Series {
  /** MiB per 1,000 iterations, after the warm-up. */
  slopeMiBPer1000: number;
  rssStartMiB: number;
  rssEndMiB: number;
  rssPeakMiB: number;
  samples: [number, number][];
  seconds: number;
}

function series(samples: [number, number][], seconds: number): Series {
  const warm = samples.filter(([i]) => i >= (samples.at(-1)?.[0] ?? 0) / 10);
  return {
    slopeMiBPer1000: slope(warm.map(([i, rss]) => [i, rss / MiB])) * 1000,
    rssStartMiB: (samples[0]?.[1] ?? 0) / MiB, rssEndMiB: (samples.at(-1)?.[1] ?? 0) / MiB,
    rssPeakMiB: Math.max(...samples.map(([, r]) => r)) / MiB, samples, seconds,
  };
}

async function world(dir: string): Promise<{ model: string; pairs: string; video: string }> {
  await writeSynthDataset({ out: dir, videos: 8, seed: 3, world: { length: 'short' }, concurrency: 2 });
  const config = JSON.parse(readFileSync(join(dir, 'model', 'config.json'), 'utf8'));
  {
    using model = await VideoLM.create(config, { seed: 1 });
    await model.save(join(dir, 'model'));
  }
  const items = await readBenchmark(join(dir, 'train-benchmark.jsonl')).toArray();
  const pairs = items.slice(0, 32).map((b) => ({
    id: b.id, video: b.video, prompt: b.question, chosen: b.options[b.answer], rejected: b.options[(b.answer + 1) % b.options.length],
  }));
  await writeJsonl(join(dir, 'pairs.jsonl'), pairs);
  return { model: join(dir, 'model'), pairs: join(dir, 'pairs.jsonl'), video: items[0]!.videoPath };
}

async function soakTraining(w: { model: string; pairs: string }, out: string, steps: number) {
  const trainer = new Trainer({
    model: w.model, output: join(out, 'run'), data: { train: w.pairs }, objective: 'tpo', lora: { r: 4, alpha: 8 }, lr: 1e-3,
    batchSize: 2, frames: 4, maxSteps: steps, epochs: 1_000_000, checkpoint: { every: Math.max(1, Math.floor(steps / 4)), keepLast: 1 },
    overwrite: true,
  });
  trainer.on('notice', () => undefined);
  const samples: [number, number][] = [];
  const lag = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  const started = performance.now();
  trainer.on('step', ({ step }) => {
    if (step === 1) lag.enable();  // from the first step on: loading is not the loop's steady state
    if (step % 10 === 0 || step === 1) samples.push([step, process.memoryUsage().rss]);
    if (step % 100 === 0) process.stderr.write(`soak: step ${step}/${steps}, RSS ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB\n`);
  });
  await trainer.fit();
  lag.disable();
  return {
    ...series(samples, (performance.now() - started) / 1000),
    // The histogram holds each interval between the sampling timer's runs, the interval itself included: the lag
    // is what exceeds it.
    eventLoopLagMs: Object.fromEntries(Object.entries({ p50: lag.percentile(50), p99: lag.percentile(99), max: lag.max, mean: lag.mean })
      .map(([k, ns]) => [k, Math.max(0, ns / 1e6 - RESOLUTION_MS)])) as { p50: number; p99: number; max: number; mean: number },
  };
}

async function soakGenerate(w: { model: string; video: string }, calls: number) {
  using session = await ModelSession.open(w.model);
  const { tokens: videoTokens } = await session.videoTokens(w.video, { kind: 'uniform', frames: 4 });
  const samples: [number, number][] = [];
  const started = performance.now();
  for (let call = 1; call <= calls; call++) {
    const prompts = [session.prompt('<image>\nWhat moves first?'), session.prompt('<image>\nHow many shapes appear?')];
    await session.model.generate({ prompts, videoTokens, maxNewTokens: 8, temperature: 1, seed: call, stopIds: session.stopIds });
    for (const p of prompts) p.dispose();
    if (call % 10 === 0 || call === 1) samples.push([call, process.memoryUsage().rss]);
    if (call % 200 === 0) process.stderr.write(`soak: generate ${call}/${calls}, RSS ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB\n`);
  }
  videoTokens.dispose();
  return series(samples, (performance.now() - started) / 1000);
}

async function main(): Promise<void> {
  const { values } = parseFlags(process.argv.slice(2), { steps: 'number', calls: 'number', out: 'string' });
  const steps = values.steps ?? 1000;
  const calls = values.calls ?? 1000;
  const out = resolve(values.out ?? 'soak-out');
  mkdirSync(out, { recursive: true });
  const w = await world(join(out, 'world'));
  const handlesBefore = tensorMemory();
  const training = await soakTraining(w, out, steps);
  const handlesAfterTraining = tensorMemory();
  const generate = await soakGenerate(w, calls);
  const handlesAfter = tensorMemory();
  const result = {
    date: new Date().toISOString(), node: process.version, steps, calls,
    training, generate, tensors: { before: handlesBefore, afterTraining: handlesAfterTraining, after: handlesAfter },
  };
  writeFileSync(join(out, 'soak.json'), JSON.stringify(result, null, 2));
  const mib = (x: number) => `${x.toFixed(1)} MiB`;
  console.log([
    `soak: ${steps} training steps in ${formatDuration(training.seconds)}, ${calls} generate calls in ${formatDuration(generate.seconds)}`,
    `training  RSS ${mib(training.rssStartMiB)} -> ${mib(training.rssEndMiB)} (peak ${mib(training.rssPeakMiB)}), slope ${training.slopeMiBPer1000.toFixed(2)} MiB per 1,000 steps`,
    `          event-loop lag during steps (beyond the ${RESOLUTION_MS} ms sampling interval) p50 ${training.eventLoopLagMs.p50.toFixed(1)} ms, ` +
      `p99 ${training.eventLoopLagMs.p99.toFixed(1)} ms, max ${training.eventLoopLagMs.max.toFixed(1)} ms`,
    `generate  RSS ${mib(generate.rssStartMiB)} -> ${mib(generate.rssEndMiB)} (peak ${mib(generate.rssPeakMiB)}), slope ${generate.slopeMiBPer1000.toFixed(2)} MiB per 1,000 calls`,
    `tensors   live handles ${handlesBefore.tensors} before, ${handlesAfterTraining.tensors} after training, ${handlesAfter.tensors} after generating`,
    `results   ${join(out, 'soak.json')}`,
  ].join('\n'));
}

await main();
