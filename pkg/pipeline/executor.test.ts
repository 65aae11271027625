import { DataType } from '../onnx/index.js';
import { Rng } from '../data/index.js';
import { InProcessPipeline, MicroBatchError, MissingOptimizerError, ScheduleError, schedule, splitBatch, splitStages, type Schedule } from './index.js';
import { floats, skipModel } from './testing.js';

describe('InProcessPipeline input checks', () => {
  const split = splitStages(skipModel(), { cuts: [['a'], ['c']], bindings: { batch: 2 } });
  const rng = new Rng(1);
  const mb = () => ({ x: floats(rng, [2, 4]) });
  const cases: { name: string; mbs: () => Record<string, ReturnType<typeof floats>>[]; sched: Schedule; err: unknown; match: RegExp }[] = [
    { name: 'schedule for another stage count', mbs: () => [mb()], sched: schedule('1f1b', 2, 1), err: ScheduleError, match: /for 2 stages/ },
    { name: 'micro-batch count differs', mbs: () => [mb(), mb()], sched: schedule('1f1b', 3, 1), err: MicroBatchError, match: /for 1 micro-batches, got 2/ },
    { name: 'missing data input', mbs: () => [{}], sched: schedule('1f1b', 3, 1), err: MicroBatchError, match: /has no "x"/ },
    { name: 'wrong micro-batch shape', mbs: () => [{ x: floats(rng, [4, 4]) }], sched: schedule('1f1b', 3, 1), err: MicroBatchError, match: /\[4,4\].*\[2,4\]/ },
  ];
  test.each(cases)('rejects: $name', async ({ mbs, sched, err, match }) => {
    const pipe = InProcessPipeline.create(split);
    await expect(pipe.gradients(mbs(), sched)).rejects.toThrow(err as typeof Error);
    await expect(pipe.gradients(mbs(), sched)).rejects.toThrow(match);
    await pipe.close();
  });

  test('trainStep without an optimizer is refused; gradients leave parameters unchanged', async () => {
    const pipe = InProcessPipeline.create(split);
    const before = pipe.params();
    await expect(pipe.trainStep([mb()], schedule('gpipe', 3, 1))).rejects.toThrow(MissingOptimizerError);
    await pipe.gradients([mb()], schedule('gpipe', 3, 1));
    expect(pipe.params()).toEqual(before);
    await pipe.close();
  });

  test('splitBatch cuts along dim 0 and rejects a batch that does not divide', () => {
    const t = { dtype: DataType.INT64, dims: [4, 2], data: BigInt64Array.from([0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n]) };
    const parts = splitBatch({ t }, 2);
    expect(parts.map((p) => [p.t!.dims, Array.from(p.t!.data as BigInt64Array)])).toEqual([[[2, 2], [0n, 1n, 2n, 3n]], [[2, 2], [4n, 5n, 6n, 7n]]]);
    expect(() => splitBatch({ t }, 3)).toThrow(MicroBatchError);
  });
});
