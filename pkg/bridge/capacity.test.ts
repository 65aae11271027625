import { FleetCapacitySource, SchedulerLoadSource, idleCapacity } from './capacity.js';

describe('capacity adapters', () => {
  test('FleetCapacitySource sums the fleet and derives the largest model from memory / 16', async () => {
    const fleet = [{ flops: 1e14, memoryBytes: 80 * 2 ** 30 }, { flops: 5e13, memoryBytes: 16 * 2 ** 30 }];
    expect(await new FleetCapacitySource(() => fleet).capacity()).toEqual({ flopsPerSecond: 150_000_000_000_000n, memoryBytes: 96n * 2n ** 30n, maxModelBytes: 6n * 2n ** 30n });
    expect((await new FleetCapacitySource(() => fleet, 8n).capacity()).maxModelBytes).toBe(12n * 2n ** 30n);
  });

  test('SchedulerLoadSource: reserved memory of all jobs, FLOP/s of busy devices only', async () => {
    const view = {
      listFleet: () => [
        { profile: { flops: 1e14 }, reservedBytes: 2 ** 30, jobIds: ['local-1'] },
        { profile: { flops: 5e13 }, reservedBytes: 0, jobIds: [] },
        { profile: { flops: 2e13 }, reservedBytes: 3 * 2 ** 30, jobIds: ['net-7', 'local-2'] },
      ],
    };
    const held = await new SchedulerLoadSource(view).held();
    expect(held).toEqual({ flopsPerSecond: 120_000_000_000_000n, memoryBytes: 4n * 2n ** 30n });
    const idle = idleCapacity({ flopsPerSecond: 170_000_000_000_000n, memoryBytes: 100n * 2n ** 30n, maxModelBytes: 1n }, held);
    expect(idle).toEqual({ flopsPerSecond: 50_000_000_000_000n, memoryBytes: 96n * 2n ** 30n, maxModelBytes: 1n });
  });
});
