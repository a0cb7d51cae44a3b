// The pairs of test/fixtures/hf/dpo (TRL's collated batch), each row without its padding.
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { tensor, type Tensor } from '../../lib/tensor.js';
import type { PreferencePairInput } from '../../lib/train/preference.js';
import { FIXTURES } from '../helpers.js';

export const DPO = join(FIXTURES, 'hf', 'dpo');

/** Each row of `ids` with the positions `mask` marks as padding removed. */
function rows(ids: Tensor, mask: Tensor): Tensor[] {
  const [n, width] = ids.shape as [number, number];
  const i = ids.toTypedArray() as BigInt64Array;
  const m = mask.toTypedArray() as BigInt64Array;
  return Array.from({ length: n }, (_, r) => {
    const kept = i.slice(r * width, (r + 1) * width).filter((_, c) => m[r * width + c] === 1n);
    return tensor(kept, [kept.length]);
  });
}

export async function dpoPairs(): Promise<PreferencePairInput[]> {
  const inputs = (await readSafetensors(join(DPO, 'inputs.safetensors'))).tensors;
  const prompts = rows(inputs.prompt_input_ids!, inputs.prompt_attention_mask!);
  const chosen = rows(inputs.chosen_input_ids!, inputs.chosen_attention_mask!);
  const rejected = rows(inputs.rejected_input_ids!, inputs.rejected_attention_mask!);
  return prompts.map((prompt, i) => ({ prompt, chosen: chosen[i]!, rejected: rejected[i]! }));
}
