import protobuf from 'protobufjs';
import { onnxSchema } from './onnx-schema.js';
import { DataType, dtypeInfo, dtypeName, type TensorData } from './dtype.js';
import { OnnxDecodeError } from './errors.js';
import type { Attribute, Graph, Model, Node, Tensor, TensorType, ValueInfo } from './ir.js';

/**
 * ModelProto <-> IR. Pure bytes in, bytes out: no file I/O (STYLE 7).
 * Tensors are always written as little-endian raw_data; on read every storage form is accepted
 * except external data, which is refused with a clear error.
 */

const root = protobuf.Root.fromJSON(onnxSchema as unknown as protobuf.INamespace);
const ModelProto = root.lookupType('onnx.ModelProto');

// Shapes of the plain objects protobufjs produces with { longs: String, bytes: Uint8Array-ish, defaults: false }.
interface PTensor {
  dims?: string[];
  dataType?: number;
  name?: string;
  rawData?: Uint8Array;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: string[];
  doubleData?: number[];
  uint64Data?: string[];
  dataLocation?: number;
  segment?: unknown;
}
interface PDim { dimValue?: string; dimParam?: string }
interface PValueInfo { name?: string; type?: { tensorType?: { elemType?: number; shape?: { dim?: PDim[] } } } }
interface PAttr {
  name?: string;
  type?: number;
  f?: number;
  i?: string;
  s?: Uint8Array;
  t?: PTensor;
  floats?: number[];
  ints?: string[];
  strings?: Uint8Array[];
}
interface PNode { input?: string[]; output?: string[]; name?: string; opType?: string; domain?: string; attribute?: PAttr[] }
interface PGraph {
  node?: PNode[];
  name?: string;
  initializer?: PTensor[];
  sparseInitializer?: unknown[];
  input?: PValueInfo[];
  output?: PValueInfo[];
  valueInfo?: PValueInfo[];
}
interface PModel {
  irVersion?: string;
  opsetImport?: { domain?: string; version?: string }[];
  producerName?: string;
  producerVersion?: string;
  graph?: PGraph;
  metadataProps?: { key?: string; value?: string }[];
  functions?: unknown[];
}

const utf8 = new TextDecoder();
const utf8enc = new TextEncoder();

export function decodeModel(bytes: Uint8Array): Model {
  if (bytes.byteLength === 0) throw new OnnxDecodeError('not an ONNX model: the file is empty');
  let msg: protobuf.Message;
  try {
    msg = ModelProto.decode(bytes);
  } catch (err) {
    throw new OnnxDecodeError(`not an ONNX model (protobuf decode failed: ${(err as Error).message}); is the file truncated?`, { cause: err });
  }
  const p = ModelProto.toObject(msg, { longs: String, defaults: false, arrays: true }) as PModel;
  if (!p.graph) throw new OnnxDecodeError('not an ONNX model: ModelProto has no graph');
  if (!p.opsetImport || p.opsetImport.length === 0) throw new OnnxDecodeError('not an ONNX model: ModelProto has no opset_import');
  if (p.functions && p.functions.length > 0) throw new OnnxDecodeError('model-local functions are not supported; inline them before export');
  return {
    irVersion: Number(p.irVersion ?? 0),
    opsetImports: p.opsetImport.map((o) => ({ domain: o.domain ?? '', version: Number(o.version ?? 0) })),
    producerName: p.producerName ?? '',
    producerVersion: p.producerVersion ?? '',
    graph: decodeGraph(p.graph),
    metadata: Object.fromEntries((p.metadataProps ?? []).map((kv) => [kv.key ?? '', kv.value ?? ''])),
  };
}

function decodeGraph(g: PGraph): Graph {
  if (g.sparseInitializer && g.sparseInitializer.length > 0) throw new OnnxDecodeError('sparse initializers are not supported');
  const initializers = new Map<string, Tensor>();
  for (const t of g.initializer ?? []) {
    if (!t.name) throw new OnnxDecodeError('graph has an initializer without a name');
    initializers.set(t.name, decodeTensor(t));
  }
  const inputs = (g.input ?? []).map(decodeValueInfo).filter((v) => !initializers.has(v.name));
  const valueInfo = new Map<string, ValueInfo>();
  for (const v of g.valueInfo ?? []) {
    const vi = tryDecodeValueInfo(v);
    if (vi) valueInfo.set(vi.name, vi);
  }
  return {
    name: g.name ?? 'graph',
    nodes: (g.node ?? []).map(decodeNode),
    inputs,
    outputs: (g.output ?? []).map(decodeValueInfo),
    initializers,
    valueInfo,
  };
}

function decodeNode(n: PNode, index: number): Node {
  if (!n.opType) throw new OnnxDecodeError(`node at position ${index} has no op_type`);
  const attrs: Record<string, Attribute> = {};
  for (const a of n.attribute ?? []) if (a.name) attrs[a.name] = decodeAttr(a);
  return {
    name: n.name || `${n.opType}_${index}`,
    opType: n.opType,
    domain: n.domain === 'ai.onnx' ? '' : (n.domain ?? ''),
    inputs: n.input ?? [],
    outputs: n.output ?? [],
    attrs,
  };
}

// AttributeProto.AttributeType values.
const AT = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

function decodeAttr(a: PAttr): Attribute {
  switch (a.type) {
    case AT.FLOAT: return { type: 'float', value: a.f ?? 0 };
    case AT.INT: return { type: 'int', value: Number(a.i ?? 0) };
    case AT.STRING: return { type: 'string', value: utf8.decode(a.s ?? new Uint8Array()) };
    case AT.TENSOR: return { type: 'tensor', value: decodeTensor(a.t ?? {}) };
    case AT.FLOATS: return { type: 'floats', value: a.floats ?? [] };
    case AT.INTS: return { type: 'ints', value: (a.ints ?? []).map(Number) };
    case AT.STRINGS: return { type: 'strings', value: (a.strings ?? []).map((s) => utf8.decode(s)) };
    default: return { type: 'unsupported', value: `attribute type ${a.type ?? 'unset'}` };
  }
}

function decodeValueInfo(v: PValueInfo): ValueInfo {
  const vi = tryDecodeValueInfo(v);
  if (!vi) throw new OnnxDecodeError(`graph input/output "${v.name ?? '?'}" is not a tensor with a known element type`);
  return vi;
}

function tryDecodeValueInfo(v: PValueInfo): ValueInfo | undefined {
  const tt = v.type?.tensorType;
  if (!v.name || !tt || !tt.elemType) return undefined;
  const shape = (tt.shape?.dim ?? []).map((d, i) => (d.dimValue !== undefined ? Number(d.dimValue) : (d.dimParam ?? `${v.name}_dim${i}`)));
  const type: TensorType = { dtype: tt.elemType as DataType, shape };
  return { name: v.name, type };
}

export function decodeTensor(t: PTensor): Tensor {
  const name = t.name ?? '(unnamed)';
  if (t.dataLocation === 1) throw new OnnxDecodeError(`tensor "${name}" uses external data, which is not supported; save the model with all tensors inline`);
  if (t.segment) throw new OnnxDecodeError(`tensor "${name}" is segmented, which is not supported`);
  const dtype = (t.dataType ?? 0) as DataType;
  let info;
  try {
    info = dtypeInfo(dtype);
  } catch {
    throw new OnnxDecodeError(`tensor "${name}" has unsupported data type ${dtypeName(dtype)}`);
  }
  const dims = (t.dims ?? []).map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  let data: TensorData;
  if (t.rawData && t.rawData.byteLength > 0) {
    if (t.rawData.byteLength !== n * info.bytes) {
      throw new OnnxDecodeError(`tensor "${name}" raw_data has ${t.rawData.byteLength} bytes, expected ${n * info.bytes} for ${dtypeName(dtype)}[${dims.join(',')}]`);
    }
    // Copy into a fresh, aligned buffer: the protobuf slice may be unaligned.
    const buf = new ArrayBuffer(n * info.bytes);
    new Uint8Array(buf).set(t.rawData);
    data = info.fromBuffer(buf, 0, n);
  } else {
    data = info.make(n);
    const src: ArrayLike<number | string> | undefined =
      dtype === DataType.FLOAT ? t.floatData
      : dtype === DataType.DOUBLE ? t.doubleData
      : dtype === DataType.INT64 ? t.int64Data
      : dtype === DataType.UINT64 || dtype === DataType.UINT32 ? t.uint64Data
      : t.int32Data; // int8/16/32, uint8/16, bool, float16/bfloat16 bit patterns
    const len = src?.length ?? 0;
    if (n > 0 && len !== n) throw new OnnxDecodeError(`tensor "${name}" holds ${len} values, expected ${n} for shape [${dims.join(',')}]`);
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
      for (let i = 0; i < n; i++) data[i] = BigInt(src![i]!);
    } else {
      for (let i = 0; i < n; i++) (data as Float64Array)[i] = Number(src![i]);
    }
  }
  return { dtype, dims, data };
}

export function encodeModel(model: Model): Uint8Array {
  const obj = {
    irVersion: String(model.irVersion),
    opsetImport: model.opsetImports.map((o) => ({ domain: o.domain, version: String(o.version) })),
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    graph: encodeGraph(model.graph),
    metadataProps: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
  };
  try {
    return ModelProto.encode(ModelProto.fromObject(obj)).finish();
  } catch (err) {
    throw new OnnxDecodeError(`cannot encode model: ${(err as Error).message}`, { cause: err });
  }
}

function encodeGraph(g: Graph): object {
  return {
    name: g.name,
    node: g.nodes.map((n) => ({
      name: n.name,
      opType: n.opType,
      domain: n.domain,
      input: n.inputs,
      output: n.outputs,
      attribute: Object.entries(n.attrs).map(([name, a]) => encodeAttr(name, a, n)),
    })),
    initializer: [...g.initializers].map(([name, t]) => encodeTensor(t, name)),
    input: g.inputs.map(encodeValueInfo),
    output: g.outputs.map(encodeValueInfo),
    valueInfo: [...g.valueInfo.values()].map(encodeValueInfo),
  };
}

function encodeAttr(name: string, a: Attribute, n: Node): object {
  switch (a.type) {
    case 'float': return { name, type: AT.FLOAT, f: a.value };
    case 'int': return { name, type: AT.INT, i: clampInt64(a.value) };
    case 'string': return { name, type: AT.STRING, s: utf8enc.encode(a.value) };
    case 'tensor': return { name, type: AT.TENSOR, t: encodeTensor(a.value, '') };
    case 'floats': return { name, type: AT.FLOATS, floats: a.value };
    case 'ints': return { name, type: AT.INTS, ints: a.value.map(clampInt64) };
    case 'strings': return { name, type: AT.STRINGS, strings: a.value.map((s) => utf8enc.encode(s)) };
    case 'unsupported': throw new OnnxDecodeError(`cannot encode attribute "${name}" of node "${n.name}": ${a.value}`);
  }
}

// Saturates like ONNX's INT64_MAX sentinel; numbers past 2^53 are only ever used as "to the end".
function clampInt64(v: number): string {
  if (v >= 9.2e18) return '9223372036854775807';
  if (v <= -9.2e18) return '-9223372036854775808';
  return String(Math.trunc(v));
}

export function encodeTensor(t: Tensor, name: string): object {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return { name, dims: t.dims.map(String), dataType: t.dtype, rawData: bytes };
}

function encodeValueInfo(v: ValueInfo): object {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: v.type.dtype,
        shape: { dim: v.type.shape.map((d) => (typeof d === 'number' ? { dimValue: String(d) } : { dimParam: d })) },
      },
    },
  };
}
