export { decodeVideo, DecodeOptions, probeVideo, SamplePlan, shownDuration, shownTimes, type DecodedVideo, type VideoInfo } from './decode.js';
export { CLIP_336, decodeSizeFor, loadPreprocessorConfig, PreprocessorConfig, preprocessFrames, SIGLIP_384 } from './preprocess.js';
export { encodeVideo, VideoEncodeOptions, type EncodeResult } from './encode.js';
export { smartResize } from './processor-rules.js';
export { videoLlama3FrameIndices, VideoLlama3ProcessorConfig, videoLlama3ResizeTarget } from './video-llama3.js';
export { internvlFrameIndices, type InternVLSampleOptions, loadInternVLProcessorConfig } from './internvl.js';
export {
  loadQwen25VLProcessorConfig, preprocessQwen25VL, Qwen25VLProcessorConfig, qwen25vlFrameIndices, qwen25vlResizeTarget, qwen25vlSecondPerGridT, qwen25vlVideoLayout,
  type Qwen25VLVideoLayout,
} from './qwen2-5-vl.js';
