import { DataType, type Tensor, type ValueInfo } from '../onnx/index.js';
import { BatcherStateError, DatasetMissingTensorError, DatasetShapeError, TensorDatasetBatcher, type TensorDatasetBatch } from './index.js';

const N = 7;
const D = 3;
// Row r of x is [r*10, r*10+1, r*10+2]; labels[r] = r, so every batch can be checked against its rows.
const tensors = new Map<string, Tensor>([
  ['x', { dtype: DataType.FLOAT, dims: [N, D], data: Float32Array.from({ length: N * D }, (_, i) => Math.floor(i / D) * 10 + (i % D)) }],
  ['labels', { dtype: DataType.INT64, dims: [N], data: BigInt64Array.from({ length: N }, (_, i) => BigInt(i)) }],
]);
const inputs: ValueInfo[] = [
  { name: 'x', type: { dtype: DataType.FLOAT, shape: ['batch', D] } },
  { name: 'labels', type: { dtype: DataType.INT64, shape: ['batch'] } },
];
const draw = (b: TensorDatasetBatcher, n: number): TensorDatasetBatch[] => Array.from({ length: n }, () => b.next());

describe('TensorDatasetBatcher', () => {
  test('feeds the drawn rows, and each epoch visits every row once', () => {
    const batch = 3;
    const b = new TensorDatasetBatcher({ tensors, batch, seed: 4, inputs });
    const seen: number[] = [];
    for (const { feeds, rows } of draw(b, 7)) {
      expect(feeds.x!.dims).toEqual([batch, D]);
      expect(feeds.labels!.dims).toEqual([batch]);
      rows.forEach((r, i) => {
        expect(Array.from((feeds.x!.data as Float32Array).subarray(i * D, (i + 1) * D))).toEqual([r * 10, r * 10 + 1, r * 10 + 2]);
        expect((feeds.labels!.data as BigInt64Array)[i]).toBe(BigInt(r));
      });
      seen.push(...rows);
    }
    for (let e = 0; e < 3; e++) expect([...seen.slice(e * N, (e + 1) * N)].sort()).toEqual([...Array(N).keys()]);
  });

  test('same seed, same batches; resumed state continues exactly, across epoch boundaries', () => {
    const opts = { tensors, batch: 4, seed: 9, inputs };
    const uninterrupted = draw(new TensorDatasetBatcher(opts), 9);
    expect(draw(new TensorDatasetBatcher(opts), 9)).toEqual(uninterrupted);
    expect(draw(new TensorDatasetBatcher({ ...opts, seed: 10 }), 9)).not.toEqual(uninterrupted);
    for (const cut of [1, 2, 5, 7]) { // cut 7: 28 rows, saved exactly at an epoch end
      const first = new TensorDatasetBatcher(opts);
      draw(first, cut);
      const resumed = TensorDatasetBatcher.fromState(opts, JSON.parse(JSON.stringify(first.getState())));
      expect(draw(resumed, 9 - cut)).toEqual(uninterrupted.slice(cut));
    }
  });

  test('without inputs, every tensor is fed', () => {
    const { feeds } = new TensorDatasetBatcher({ tensors, batch: 2, seed: 1 }).next();
    expect(Object.keys(feeds).sort()).toEqual(['labels', 'x']);
  });

  const withTensor = (name: string, t: Tensor) => new Map([...tensors, [name, t]]);
  test.each([
    { name: 'leading dims differ', opts: { tensors: withTensor('labels', { dtype: DataType.INT64, dims: [N - 1], data: new BigInt64Array(N - 1) }), batch: 2, seed: 1 }, err: DatasetShapeError, msg: 'tensor "labels" has shape [6] but tensor "x" has shape [7,3]' },
    { name: 'scalar tensor', opts: { tensors: withTensor('s', { dtype: DataType.FLOAT, dims: [], data: new Float32Array(1) }), batch: 2, seed: 1 }, err: DatasetShapeError, msg: '"s" is a scalar' },
    { name: 'row shape mismatch', opts: { tensors, batch: 2, seed: 1, inputs: [{ name: 'x', type: { dtype: DataType.FLOAT, shape: ['batch', D + 1] } }] }, err: DatasetShapeError, msg: 'tensor "x" has shape [7,3] but model input "x" expects [batch,4]' },
    { name: 'fixed batch mismatch', opts: { tensors, batch: 2, seed: 1, inputs: [{ name: 'labels', type: { dtype: DataType.INT64, shape: [5] } }] }, err: DatasetShapeError, msg: 'expects [5] (batch 2)' },
    { name: 'dtype mismatch', opts: { tensors, batch: 2, seed: 1, inputs: [{ name: 'labels', type: { dtype: DataType.INT32, shape: ['batch'] } }] }, err: DatasetShapeError, msg: 'int64 but model input "labels" expects int32' },
    { name: 'missing tensor', opts: { tensors, batch: 2, seed: 1, inputs: [{ name: 'tokens', type: { dtype: DataType.INT64, shape: ['batch', 4] } }] }, err: DatasetMissingTensorError, msg: '"tokens"' },
  ])('rejects $name', ({ opts, err, msg }) => {
    expect(() => new TensorDatasetBatcher(opts)).toThrow(err);
    expect(() => new TensorDatasetBatcher(opts)).toThrow(msg);
  });

  test('rejects a state from another dataset', () => {
    expect(() => TensorDatasetBatcher.fromState({ tensors, batch: 2, seed: 1 }, { epochRng: 1, cursor: N + 1, step: 0 })).toThrow(BatcherStateError);
  });
});
