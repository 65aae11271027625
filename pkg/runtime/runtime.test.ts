import { DataType } from '../onnx/index.js';
import { OrtSession, measureMatMulFlops } from './index.js';
import { singleOpModel } from '../autodiff/testing/gradcheck.js';

// Timings are not asserted here (machines are shared and noisy); bench/ measures them as ratios.
describe('runtime', () => {
  test('the MatMul probe returns a finite positive rate', async () => {
    const flops = await measureMatMulFlops({ size: 128, repeats: 3 });
    expect(Number.isFinite(flops)).toBe(true);
    expect(flops).toBeGreaterThan(0);
  });

  test('a throttled session computes the same result; a slowdown below 1 is refused', async () => {
    const m = singleOpModel({ op: 'Relu', inputs: [{ name: 'a', dtype: DataType.FLOAT, shape: [4] }], outputs: [{ name: 'y0', dtype: DataType.FLOAT, shape: [4] }] });
    const feeds = { a: { dtype: DataType.FLOAT, dims: [4], data: Float32Array.of(-1, 2, -3, 4) } };
    const plain = await OrtSession.create(m);
    const slow = await OrtSession.create(m, { slowdown: 4 });
    expect(Array.from((await slow.run(feeds)).y0!.data as Float32Array)).toEqual(Array.from((await plain.run(feeds)).y0!.data as Float32Array));
    await expect(OrtSession.create(m, { slowdown: 0.5 })).rejects.toThrow(/slowdown/);
    await plain.release();
    await slow.release();
  });
});
