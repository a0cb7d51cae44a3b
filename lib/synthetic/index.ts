// The synthetic temporal world: videos with exact captions, temporal questions, manipulations, datasets, and the
// tiny default model's tokenizer and config.
export { annotate, annotation, article, caption, type AnnotatedEvent, type SynthAnnotation } from './captions.js';
export {
  SynthOptions, writeModelFiles, writeSynthDataset, type SynthProgress, type SynthSummary,
} from './dataset.js';
export {
  downsample, keepRange, removeRange, reverse, selectFrames, shuffleScenes,
  type FrameRange, type Manipulated, type ManipulatedEvent,
} from './manipulate.js';
export {
  FRAME_SIZE, tinyModelConfig, TINY_PREPROCESSOR_CONFIG, tinyVideoLlavaConfig, TINY_VIDEO_LLAVA_PREPROCESSOR_CONFIG,
} from './model-config.js';
export {
  COMPREHENSIVE_TYPES, LOCALIZED_TYPES, makeQuestions, nounPhrase,
  type QuestionKind, type QuestionType, type WorldQuestion,
} from './questions.js';
export { deriveSeed, Random } from './random.js';
export {
  CHOICE_INSTRUCTION, formatChoices, LetterSchedule, placeAnswer, questionRecords,
  type BenchmarkRecord, type SftRecord, type VideoRef,
} from './records.js';
export { renderSpec, renderVideo } from './render.js';
export { type Split, SPLITS, splitOfSeed, splitSeeds, splitSizes } from './splits.js';
export {
  CHAT_TEMPLATE, SPECIAL_TOKENS, worldTokenizer, worldTokenizerFiles, worldVocabulary, worldWords,
  type TokenizerFiles,
} from './tokenizer.js';
export {
  COLOR_NAMES, COLORS, MOTION_PHRASES, MOTIONS, REVERSED_MOTION, SHAPES,
  type Color, type Motion, type Rgb, type Shape,
} from './vocabulary.js';
export {
  eventSpan, frameTime, LENGTHS, LengthSpec, makeVideo, resolveWorldOptions, WorldOptions,
  type LengthBin, type Pose, type ResolvedWorldOptions, type SynthVideo, type Timeline, type TimelineEvent,
  type WorldEvent,
} from './world.js';
