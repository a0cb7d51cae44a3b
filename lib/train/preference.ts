// Preference objectives (TRL's DPO losses and TPO's SFT term) over a batch of pairs, through the native model:
// the loss, TRL's metrics and, on request, gradients (the loss schema is loss.ts). The training step runs the same
// forward and reports the same metrics, computed by the same native function (native/train/preference.cc
// preference_metrics).
import { z } from 'zod';

import type { NativePair, NativePreferenceOutput, PreferenceMetrics, Tensor } from '../addon.js';
import { VideoLM } from '../model/video-lm.js';
import { native } from '../native.js';
import { parse } from '../validate.js';
import { ForwardSettings, LossConfig } from './loss.js';

export { LossConfig };
export type { PreferenceMetrics };

export interface PreferencePairInput extends NativePair {
  /** 1-D ids: the prompt (the image id once when there is a video). */
  prompt: Tensor;
  chosen: Tensor;
  rejected: Tensor;
  /** Frames [F, 3, S, S] or visual tokens [V, D]; with frames, VideoLLaMA3's frameText; Qwen2.5-VL's
   * secondPerGridTs, and with tokens their videoGridThw (NativeVideoInput). */
  video?: Tensor;
  /** Precomputed reference log-probs [chosen, rejected]. */
  reference?: [number, number];
}

const ForwardOptions = ForwardSettings.extend({
  /** Parameter names whose gradients of the loss to return. */
  gradients: z.array(z.string()).optional(),
});
export type ForwardOptions = z.input<typeof ForwardOptions>;

export type PreferenceOutput = NativePreferenceOutput;

/** The preference loss of `pairs` under `policy` (and `reference`, for the frozen-copy mode). */
export async function preferenceForward(
  policy: VideoLM, pairs: PreferencePairInput[], options: ForwardOptions = {}, reference?: VideoLM,
): Promise<PreferenceOutput> {
  const o = parse(ForwardOptions, options, 'preferenceForward: options');
  return native().trainPreferenceForward({ policy: policy.native, reference: reference?.native, pairs, ...o });
}

/** TRL's metric names for a batch (means over pairs), as the native forward computed them. */
export function preferenceMetrics(out: PreferenceOutput): PreferenceMetrics {
  return out.metrics;
}
