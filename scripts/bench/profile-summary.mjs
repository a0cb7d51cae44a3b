#!/usr/bin/env node
// Tables the Chrome traces that TPO_PROFILE_DIR makes (native/runtime/runtime.h profile_scope) or that
// torch.profiler's export_chrome_trace writes: self and total time per op name, summed over the given files.
//   node scripts/bench/profile-summary.mjs TRACE.json... [--top 30]
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 30;
if (args.length === 0) {
  console.error('usage: profile-summary.mjs TRACE.json... [--top N]');
  process.exit(2);
}

const totals = new Map(); // name -> { self, total, calls }
let wall = 0;
for (const file of args) {
  const parsed = JSON.parse(readFileSync(file, 'utf8'));
  const events = (Array.isArray(parsed) ? parsed : parsed.traceEvents).filter((e) => e.ph === 'X' && typeof e.dur === 'number');
  const byThread = new Map();
  for (const e of events) {
    if (e.cat && !/cpu_op|Operator|^$/.test(e.cat) && e.cat !== undefined && !String(e.cat).includes('op')) continue;
    const key = `${e.pid}/${e.tid}`;
    if (!byThread.has(key)) byThread.set(key, []);
    byThread.get(key).push(e);
  }
  for (const list of byThread.values()) {
    list.sort((a, b) => a.ts - b.ts || b.dur - a.dur);
    const stack = [];
    const start = list[0]?.ts ?? 0;
    let end = start;
    for (const e of list) {
      while (stack.length && stack[stack.length - 1].ts + stack[stack.length - 1].dur <= e.ts) stack.pop();
      const parent = stack[stack.length - 1];
      if (parent) parent.child += e.dur;
      e.child = 0;
      stack.push(e);
      end = Math.max(end, e.ts + e.dur);
    }
    wall += end - start;
    for (const e of list) {
      const t = totals.get(e.name) ?? { self: 0, total: 0, calls: 0 };
      t.self += e.dur - e.child;
      t.total += e.dur;
      t.calls += 1;
      totals.set(e.name, t);
    }
  }
}
const rows = [...totals.entries()].sort((a, b) => b[1].self - a[1].self);
const selfSum = rows.reduce((s, [, t]) => s + t.self, 0);
console.log(`traced ${(wall / 1000).toFixed(1)} ms of thread time, ${(selfSum / 1000).toFixed(1)} ms inside ops\n`);
console.log('op'.padEnd(48), 'self ms'.padStart(10), 'self %'.padStart(7), 'total ms'.padStart(10), 'calls'.padStart(7));
for (const [name, t] of rows.slice(0, top)) {
  console.log(name.slice(0, 48).padEnd(48), (t.self / 1000).toFixed(1).padStart(10), ((100 * t.self) / selfSum).toFixed(1).padStart(7),
    (t.total / 1000).toFixed(1).padStart(10), String(t.calls).padStart(7));
}
