// Shared by the parity tests against transformers' fixtures (test/fixtures/hf/*): the tolerance the project
// holds them to, reading a fixture's inputs and expected tensors, and prompts in tpo's placeholder form.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { tensor, type Tensor } from '../../lib/tensor.js';

export const ATOL = 1e-5;
export const RTOL = 1e-4;

/** Every element within atol + rtol * |expected|, shapes equal. */
export function assertClose(actual: Tensor | undefined, expected: Tensor, what: string, atol = ATOL, rtol = RTOL): void {
  assert.ok(actual, `${what} is produced`);
  assert.deepEqual(actual.shape, expected.shape, `${what} shape`);
  const a = actual.toTypedArray() as Float32Array;
  const b = expected.toTypedArray() as Float32Array;
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i]! - b[i]!) <= atol + rtol * Math.abs(b[i]!), `${what}: element ${i} is ${a[i]}, expected ${b[i]}`);
  }
}

/** A fixture folder's inputs.safetensors and expected.safetensors. */
export async function readFixture(dir: string) {
  const inputs = (await readSafetensors(join(dir, 'inputs.safetensors'))).tensors;
  const expected = (await readSafetensors(join(dir, 'expected.safetensors'))).tensors;
  return { inputs, expected };
}

export const int64 = (t: Tensor) => Array.from(t.toTypedArray() as BigInt64Array);

/** transformers' expanded prompt (the video id once per visual token) as tpo's: each run of video ids -> one -200. */
export function placeholderForm(ids: bigint[], videoId: bigint): Tensor {
  const out: bigint[] = [];
  for (const id of ids) if (id !== videoId) out.push(id); else if (out.at(-1) !== -200n) out.push(-200n);
  return tensor(BigInt64Array.from(out), [out.length]);
}

/** The InternVL fixture's frame text: its stand-in ids of "\n", "Frame", the digits, ":", <img> and </img>
 * (scripts/fixtures/internvl_reference.py), for VideoLM.setFrameText. */
export const INTERNVL_FIXTURE_FRAME_TEXT = Array.from({ length: 3 }, (_, i) => ({
  before: [...(i ? [45] : []), 40, 41 + i, 44, 60], after: [61],
}));
