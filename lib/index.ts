// tpo: Temporal Preference Optimization for video language models.
export { loadNative, NativeLoadError, type LoadedAddon, type NativeAddon } from './native.js';
export { findLibtorch, LIBTORCH_VERSION, type Libtorch } from './libtorch.js';
export {
  disposeAll, DTYPES, isTensor, tensor, tensorMemory,
  type AnyTypedArray, type DType, type Tensor, type TensorMemory, type TypedArrayOf,
} from './tensor.js';
export { benchMatmul, runtimeInfo, setNumThreads, type MatmulResult, type RuntimeInfo } from './runtime.js';
export {
  ByteSize, readSafetensors, readSafetensorsHeader, writeSafetensors, writeSafetensorsFolder,
  type Safetensors, type SafetensorsHeaderEntry,
} from './model/safetensors.js';
export { doctor, type DoctorReport } from './cli/doctor.js';
