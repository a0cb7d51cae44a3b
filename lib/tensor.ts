// Tensors at the TypeScript level: making one from a TypedArray, and the types every stage shares.
// The data lives in native memory; a Tensor is a handle (see native.ts).
import { z } from 'zod';

import { parse } from './validate.js';
import {
  type AnyTypedArray, type DType, DTYPES, native, type Tensor, type TensorMemory, type TypedArrayOf,
} from './native.js';

export { DTYPES, type AnyTypedArray, type DType, type Tensor, type TensorMemory, type TypedArrayOf };

const Shape = z.array(z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER));
const DTypeSchema = z.enum(DTYPES);

/**
 * A tensor holding a copy of `data`, with `shape` (default: 1-D). The dtype defaults to the array's own
 * (Float32Array → float32, BigInt64Array → int64, Uint8Array → uint8, ...); float16 and bfloat16 take a
 * Uint16Array of raw bits, bool a Uint8Array of 0/1.
 */
export function tensor<D extends DType>(data: TypedArrayOf[D], shape?: readonly number[], dtype?: D): Tensor<D>;
export function tensor(data: AnyTypedArray, shape?: readonly number[], dtype?: DType): Tensor {
  const checkedShape = parse(Shape, shape ?? [data.length], 'tensor: shape');
  const checkedDtype = dtype === undefined ? undefined : parse(DTypeSchema, dtype, 'tensor: dtype');
  return native().tensorFromTypedArray(data, checkedShape, checkedDtype);
}

export function isTensor(value: unknown): value is Tensor {
  return value instanceof native().Tensor;
}

/** How many tensors live handles hold and their bytes: a number that only grows is a leak. */
export function tensorMemory(): TensorMemory {
  return native().tensorMemory();
}

/** Disposes every tensor in a record (the usual shape of weights), ignoring those already disposed. */
export function disposeAll(tensors: Record<string, Tensor> | Iterable<Tensor>): void {
  const values = Symbol.iterator in tensors ? tensors : Object.values(tensors);
  for (const t of values as Iterable<Tensor>) t.dispose();
}
