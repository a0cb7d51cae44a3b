// Pixels of the synthetic world: one native call draws a whole video (native/synthetic/render.cc); lib/video's
// encodeVideo writes it as a real file.
import { native, type NativeRenderSpec, type Tensor } from '../native.js';
import { COLORS } from './vocabulary.js';
import type { SynthVideo } from './world.js';

/** What the renderer needs of a video: sizes, background, noise seed, and each event's colour and poses. */
export function renderSpec(video: SynthVideo): NativeRenderSpec {
  return {
    width: video.width, height: video.height, frames: video.frames, background: [...video.background],
    noise: video.noise, seed: video.seed,
    events: video.events.map((e) => ({
      shape: e.shape, color: [...COLORS[e.color]], start: e.start, end: e.end, from: e.from, to: e.to,
      blinkPeriod: e.blinkPeriod,
    })),
  };
}

/** The video's frames, uint8 [frames, height, width, 3] RGB. */
export function renderVideo(video: SynthVideo): Promise<Tensor<'uint8'>> {
  return native().synthRender(renderSpec(video));
}
