export { decodeVideo, DecodeOptions, probeVideo, SamplePlan, type DecodedVideo, type VideoInfo } from './decode.js';
export { CLIP_336, decodeSizeFor, loadPreprocessorConfig, PreprocessorConfig, preprocessFrames, SIGLIP_384 } from './preprocess.js';
export { encodeVideo, VideoEncodeOptions, type EncodeResult } from './encode.js';
