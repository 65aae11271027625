import { DataType, attr, type Model, type Node, type Tensor } from '../../onnx/index.js';

/**
 * Test support: a float64 copy of a float32 model, so whole-model gradients can be checked against
 * finite differences without float32 noise. onnxruntime-node has no float64 Erf kernel, so exact
 * Gelu is switched to its tanh form (that rule is checked on its own in float32).
 */
export function toFloat64(model: Model): Model {
  const conv = (t: Tensor): Tensor => (t.dtype === DataType.FLOAT ? { dtype: DataType.DOUBLE, dims: [...t.dims], data: Float64Array.from(t.data as Float32Array) } : t);
  const nodes: Node[] = model.graph.nodes.map((n) => {
    const attrs = { ...n.attrs };
    if (n.opType === 'Constant') {
      const v = attrs.value;
      if (v?.type === 'tensor') attrs.value = attr.tensor(conv(v.value));
      if (attrs.value_float?.type === 'float') { attrs.value = attr.tensor({ dtype: DataType.DOUBLE, dims: [], data: Float64Array.of(attrs.value_float.value) }); delete attrs.value_float; }
    }
    if (n.opType === 'Cast' && attrs.to?.type === 'int' && attrs.to.value === DataType.FLOAT) attrs.to = attr.int(DataType.DOUBLE);
    if (n.opType === 'Gelu') attrs.approximate = attr.string('tanh');
    return { ...n, attrs };
  });
  const vi = (v: { name: string; type: { dtype: DataType; shape: (number | string)[] } }) => ({ name: v.name, type: { dtype: v.type.dtype === DataType.FLOAT ? DataType.DOUBLE : v.type.dtype, shape: v.type.shape } });
  return {
    ...model,
    graph: {
      ...model.graph,
      nodes,
      inputs: model.graph.inputs.map(vi),
      outputs: model.graph.outputs.map(vi),
      initializers: new Map([...model.graph.initializers].map(([k, t]) => [k, conv(t)])),
      valueInfo: new Map(),
    },
  };
}
