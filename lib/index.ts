// tpo: Temporal Preference Optimization for video language models.
export { loadNative, NativeLoadError, nvidiaDriver, type LoadAttempt, type LoadedAddon, type NativeAddon } from './native.js';
export { findLibtorch, LIBTORCH_VERSION, type Libtorch } from './libtorch.js';
export {
  disposeAll, DTYPES, isTensor, tensor, tensorMemory,
  type AnyTypedArray, type DType, type Tensor, type TensorMemory, type TypedArrayOf,
} from './tensor.js';
export { benchMatmul, peakRss, runtimeInfo, setNumThreads, type MatmulResult, type RuntimeInfo } from './runtime.js';
export {
  ByteSize, readSafetensors, readSafetensorsHeader, writeSafetensors, writeSafetensorsFolder,
  type Safetensors, type SafetensorsHeaderEntry,
} from './model/safetensors.js';
export { doctor, formatDoctor, type DoctorCheck, type DoctorReport } from './doctor.js';
export {
  CLIP_336, decodeSizeFor, decodeVideo, DecodeOptions as VideoDecodeOptions, loadPreprocessorConfig, PreprocessorConfig, preprocessFrames, probeVideo,
  SamplePlan, shownDuration, shownTimes, SIGLIP_384, type DecodedVideo, type VideoInfo, internvlFrameIndices, loadInternVLProcessorConfig, type InternVLSampleOptions,
  loadQwen25VLProcessorConfig, preprocessQwen25VL, Qwen25VLProcessorConfig, qwen25vlFrameIndices, qwen25vlResizeTarget, qwen25vlSecondPerGridT, qwen25vlVideoLayout, type Qwen25VLVideoLayout,
} from './video/index.js';
export {
  Tokenizer, type AddedTokenInfo, type ChatMessage, type ChatOptions, type DecodeOptions, type EncodeOptions,
  type SpecialToken,
} from './model/tokenizer.js';
export { VIDEO_LLAVA_SYSTEM, videoLlavaChatTemplate } from './model/templates.js';
export {
  encodePair, encodePrompt, encodeSft, pairSequence, IGNORE_INDEX, IMAGE_PLACEHOLDER, IMAGE_TOKEN_INDEX,
  type DroppedSpan, type InputOptions, type PairInputs, type SftInputs, type Truncation,
} from './data/encode.js';
export {
  readAnnotations, readBenchmark, readPairs, readSft,
  type BenchmarkItem, type Caption, type DatasetOptions, type PreferencePair, type SftRecord, type VideoAnnotation,
} from './data/records.js';
export {
  JsonlAppender, LineSplitter, readJsonValues, RecordReader, writeJsonl,
  type JsonRecord, type ReadOptions, type ReadStats, type RepairedTail,
} from './data/jsonl.js';
export {
  assertVideosExist, findMissingVideos, groupByVideo, mulberry32, resolveVideoPath, seededShuffle, videoBatches,
  type Batch, type BatchOptions, type HasVideo, type VideoGroup,
} from './data/videos.js';
export { DataError, MissingVideosError, type MissingVideo, type RecordSource } from './data/errors.js';
export { encodeVideo, type EncodeResult, type VideoEncodeOptions } from './video/encode.js';
export { writeSynthDataset, type SynthOptions, type SynthProgress, type SynthSummary } from './synthetic/dataset.js';
/** The synthetic temporal world: timelines, rendering, captions, questions, manipulations, tokenizer, tiny config. */
export * as synthetic from './synthetic/index.js';
export {
  EvalConfig, evaluate, formatResults, NonFiniteScoreError,
  type EvalProgress, type EvalResults, type EvalSample, type ResolvedEvalConfig,
} from './eval/evaluate.js';
export {
  detectFormat, EVAL_FORMATS, readEvalBenchmark, ReadEvalOptions, type EvalFormat, type EvalItem,
} from './eval/formats.js';
export {
  aggregate, formatOptions, parseChoice, type Aggregate, type CategoryScore, type ParsedChoice,
} from './eval/score.js';
export { formatDuration, ProgressBar, type ProgressOptions, type ProgressStream } from './progress.js';
export { writeTextFile } from './data/jsonl.js';
export {
  CONVERT_FORMATS, convertDataset, convertRow, ConvertOptions, readRows, type ConvertFormat, type ConvertSummary,
} from './data/convert.js';
export { readParquetValues } from './data/parquet.js';
export { JSON_SCHEMAS, PairRecord as PairRecordSchema, SftRecord as SftRecordSchema } from './data/schema.js';
export { isLmmsEvalOut, LMMS_EVAL_TASKS, writeLmmsEval, type LmmsEvalFiles } from './eval/lmms-eval.js';
export { lossTypes, needsReference, type ResolvedLossConfig } from './train/loss.js';
export { TensorBoardWriter, tensorboardTag } from './train/tensorboard.js';
export {
  barChart, lineChart, niceAxis,
  type Axis, type BarChartOptions, type BarSeries, type LineChartOptions, type LineSeries,
} from './report/svg.js';
export { readMetrics, type MetricSeries } from './report/metrics.js';
export {
  formatComparisonTable, writeReport,
  type CategoryAccuracy, type DemoReport, type ModelScores, type PairStats, type ReportFiles, type StageTiming,
} from './report/report.js';
export { VideoLM, type ForwardInputs, type FrameText, type GenerateOptions, type LoadOptions, type LogprobOptions, type LoraOptions, type ModelInfo, type SaveOptions } from './model/video-lm.js';
export { copyModelFiles } from './model/files.js';
export { CorruptOptions, corruptFrames } from './video/corrupt.js';
export { TrainConfig, PRESETS, type ResolvedTrainConfig } from './train/config.js';
export { NothingTrainedError, RunFolderError, Trainer, type FitResult, type StepEvent } from './train/trainer.js';
export { RunFolder, type Checkpoint, type RunRecord } from './train/run-folder.js';
export { ForwardSettings, LOSS_TYPES, LossOverrides, LossType, REFERENCE_MODES, ReferenceMode } from './train/loss.js';
export { Optimizer, OptimizerConfig, OptimizerOptions } from './train/optimizer.js';
export {
  LossConfig, preferenceForward, preferenceMetrics, type ForwardOptions, type PreferenceMetrics, type PreferenceOutput,
  type PreferencePairInput,
} from './train/preference.js';
export { learningRate, Schedule } from './train/schedule.js';
export {
  CUDA_OVERHEAD, layerCosts, modelShape, parameterCounts, parseGpus, planMemory, PlanRun, visualTokens,
  type MemoryPlan, type MemoryTerm, type ModelShape,
} from './train/plan.js';
export {
  generatePairs, GenerateConfig, MANIPULATIONS, type GenerateProgress, type GenerateSummary, type Manipulation,
} from './tpo/generate.js';
export {
  comprehensivePlans, corruptedPlans, localizedPlans, shuffledScenePlans, type PlanPair, type ScenePlans,
} from './tpo/plans.js';
export {
  answerMatches, closeness, gradedJudge, judgeGraded, judgeSynthetic, JUDGES, llmJudge, makeJudge, noneJudge, normalizeAnswer, settleSides, syntheticJudge,
  type DropReason, type Judge, type JudgedQuestion, type JudgeKind, type Verdict,
} from './tpo/judge.js';
export { GenerationState, type GenerateSummary as GenerationSummary } from './tpo/state.js';
export { mixed, quotas } from './tpo/quotas.js';
export { DroppedPair, PairRecord, SkipRecord } from './tpo/records.js';
export { captionWork, inputsFor, syntheticWork, type VideoWork } from './tpo/work.js';
export { matchOption, MAX_OPTIONS, OPTION_LETTERS, type OptionMatch } from './data/answers.js';
export {
  INTERNVL_MAX_FRAMES, internvlFrameText, isVideoError, ModelSession, ON_VIDEO_ERROR, pythonFixed1, VideoError, videoLlama3FrameText,
  type OnVideoError, type SessionOptions,
} from './model/session.js';
export { fileDigest, modelDigest } from './model/digest.js';
export {
  checkInputDir, checkInputFile, checkInputFileOrDir, PathError, prepareOutputDir, prepareOutputFile, prepareWritableDir,
} from './paths.js';
export { ChatClient, LlmConfig, LlmError, type ChatMessage as LlmMessage } from './tpo/llm.js';
export { checkCaptions, generateQuestion, judgePair, type GeneratedQuestion, type JudgeVerdict } from './tpo/questions.js';
export { captionQuestions, syntheticQuestion, type Skip, type TpoQuestion } from './tpo/sources.js';
export { DemoOptions, PACKAGED_BASE, runDemo, type DemoEvent, type DemoResult } from './demo/demo.js';
export { BASE_CURRICULUM, trainBase, type CurriculumStage } from './demo/base.js';
export { DistributedConfig, distEnv, isSecondaryRank, TorchrunEnv, type DistEnv } from './dist/config.js';
export { contiguousParts, Group, roundRobin } from './dist/group.js';
export { freePort, launchLocal, LaunchOptions } from './dist/launch.js';
export type { DataParallel } from './train/optimizer.js';
