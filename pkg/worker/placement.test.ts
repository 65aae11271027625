import type { ModelChain, Plan, StagePlan } from '../planner/index.js';
import { PlacementError, placementFromPlan } from './placement.js';

const chain: ModelChain = {
  layers: ['h.0.out', 'h.1.out', 'h.2.out', 'loss'].map((name) => ({ name, fwdFlops: 1, bwdFlops: 2, paramBytes: 1, optimizerStateBytes: 1, activationBytesOut: 1, stashBytes: 1 })),
};

const stage = (index: number, deviceId: string, layers: [number, number]): StagePlan => ({
  index, deviceId, deviceName: 'cpu', layers, computeMs: 1, sendMs: 0, recvMs: 0, stageMs: 1, inFlight: 1, memoryBytes: 1, memoryAvailable: 2,
});
const plan = (stages: StagePlan[]): Plan => ({
  method: 'exact', schedule: '1f1b', microBatches: 2, stages, bottleneckStage: 0, bottleneckMs: 1, predictedStepMs: 1, lowerBoundMs: 1, gap: 1, microBatchesPerSecond: 1,
});

describe('placementFromPlan', () => {
  test.each([
    { name: 'one stage', stages: [stage(0, 'w2', [0, 4])], want: { stages: 1, workers: ['w2'], cuts: [] } },
    { name: 'two stages', stages: [stage(0, 'w1', [0, 1]), stage(1, 'w0', [1, 4])], want: { stages: 2, workers: ['w1', 'w0'], cuts: [['h.0.out']] } },
    {
      name: 'three stages',
      stages: [stage(0, 'a', [0, 2]), stage(1, 'b', [2, 3]), stage(2, 'c', [3, 4])],
      want: { stages: 3, workers: ['a', 'b', 'c'], cuts: [['h.1.out'], ['h.2.out']], layers: [[0, 2], [2, 3], [3, 4]] },
    },
  ])('$name', ({ stages, want }) => {
    expect(placementFromPlan(plan(stages), chain)).toMatchObject(want);
  });

  test.each([
    { name: 'no stages', stages: [], match: /no stages/ },
    { name: 'gap between stages', stages: [stage(0, 'a', [0, 1]), stage(1, 'b', [2, 4])], match: /stage 1 covers layers \[2, 4\), expected a non-empty range from 1/ },
    { name: 'empty stage', stages: [stage(0, 'a', [0, 0]), stage(1, 'b', [0, 4])], match: /stage 0 covers layers \[0, 0\)/ },
    { name: 'chain not covered', stages: [stage(0, 'a', [0, 3])], match: /covers layers \[0, 3\) of a chain of 4/ },
  ])('rejects $name', ({ stages, match }) => {
    expect(() => placementFromPlan(plan(stages), chain)).toThrow(PlacementError);
    expect(() => placementFromPlan(plan(stages), chain)).toThrow(match);
  });

  test('a chain layer without a name cannot end a stage', () => {
    const unnamed: ModelChain = { layers: chain.layers.map((l, i) => (i === 0 ? { ...l, name: undefined } : l)) };
    expect(() => placementFromPlan(plan([stage(0, 'a', [0, 1]), stage(1, 'b', [1, 4])]), unnamed)).toThrow(/stage 0 ends at chain layer 0, which names no cut value/);
  });
});
