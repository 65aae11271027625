/** ONNX TensorProto.DataType values Tessera understands. `as const` instead of an enum (STYLE 9). */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;
export type DataType = (typeof DataType)[keyof typeof DataType];

export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

interface DTypeInfo {
  name: string;
  /** onnxruntime-node tensor type string. */
  ort: string;
  bytes: number;
  make: (n: number) => TensorData;
  fromBuffer: (buf: ArrayBuffer, byteOffset: number, length: number) => TensorData;
}

const INFO: Partial<Record<DataType, DTypeInfo>> = {
  [DataType.FLOAT]: { name: 'float32', ort: 'float32', bytes: 4, make: (n) => new Float32Array(n), fromBuffer: (b, o, l) => new Float32Array(b, o, l) },
  [DataType.DOUBLE]: { name: 'float64', ort: 'float64', bytes: 8, make: (n) => new Float64Array(n), fromBuffer: (b, o, l) => new Float64Array(b, o, l) },
  [DataType.FLOAT16]: { name: 'float16', ort: 'float16', bytes: 2, make: (n) => new Uint16Array(n), fromBuffer: (b, o, l) => new Uint16Array(b, o, l) },
  [DataType.BFLOAT16]: { name: 'bfloat16', ort: 'bfloat16', bytes: 2, make: (n) => new Uint16Array(n), fromBuffer: (b, o, l) => new Uint16Array(b, o, l) },
  [DataType.INT8]: { name: 'int8', ort: 'int8', bytes: 1, make: (n) => new Int8Array(n), fromBuffer: (b, o, l) => new Int8Array(b, o, l) },
  [DataType.UINT8]: { name: 'uint8', ort: 'uint8', bytes: 1, make: (n) => new Uint8Array(n), fromBuffer: (b, o, l) => new Uint8Array(b, o, l) },
  [DataType.INT16]: { name: 'int16', ort: 'int16', bytes: 2, make: (n) => new Int16Array(n), fromBuffer: (b, o, l) => new Int16Array(b, o, l) },
  [DataType.UINT16]: { name: 'uint16', ort: 'uint16', bytes: 2, make: (n) => new Uint16Array(n), fromBuffer: (b, o, l) => new Uint16Array(b, o, l) },
  [DataType.INT32]: { name: 'int32', ort: 'int32', bytes: 4, make: (n) => new Int32Array(n), fromBuffer: (b, o, l) => new Int32Array(b, o, l) },
  [DataType.UINT32]: { name: 'uint32', ort: 'uint32', bytes: 4, make: (n) => new Uint32Array(n), fromBuffer: (b, o, l) => new Uint32Array(b, o, l) },
  [DataType.INT64]: { name: 'int64', ort: 'int64', bytes: 8, make: (n) => new BigInt64Array(n), fromBuffer: (b, o, l) => new BigInt64Array(b, o, l) },
  [DataType.UINT64]: { name: 'uint64', ort: 'uint64', bytes: 8, make: (n) => new BigUint64Array(n), fromBuffer: (b, o, l) => new BigUint64Array(b, o, l) },
  [DataType.BOOL]: { name: 'bool', ort: 'bool', bytes: 1, make: (n) => new Uint8Array(n), fromBuffer: (b, o, l) => new Uint8Array(b, o, l) },
};

export function dtypeInfo(dtype: number): DTypeInfo {
  const info = INFO[dtype as DataType];
  if (!info) throw new RangeError(`unsupported ONNX data type ${dtype}`);
  return info;
}

export function dtypeName(dtype: number): string {
  return INFO[dtype as DataType]?.name ?? `dtype(${dtype})`;
}

export function isFloat(dtype: number): boolean {
  return dtype === DataType.FLOAT || dtype === DataType.DOUBLE || dtype === DataType.FLOAT16 || dtype === DataType.BFLOAT16;
}

/** Inverse of `dtypeInfo(..).ort`: maps an onnxruntime tensor type string back to ONNX. */
export function dtypeFromOrt(type: string): DataType {
  for (const [k, v] of Object.entries(INFO)) if (v.ort === type) return Number(k) as DataType;
  throw new RangeError(`unsupported onnxruntime tensor type ${type}`);
}
