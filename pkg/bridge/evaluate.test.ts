import { evaluateJob, SkipReason, type EvaluationContext, type JobOffer } from './evaluate.js';
import { idleCapacity } from './capacity.js';

const offer = (o: Partial<JobOffer> = {}): JobOffer => ({ jobId: 1n, reward: 1000n, steps: 10n, deadline: 1000n, modelBytes: 1000n, stepSeconds: 1, ...o });
const ctx = (c: Partial<EvaluationContext> = {}): EvaluationContext => ({
  now: 0n, idle: { flopsPerSecond: 10n ** 12n, memoryBytes: 100_000n, maxModelBytes: 10_000n }, policy: { minWeiPerStep: 100n }, marginSeconds: 60, ...c,
});

describe('evaluateJob', () => {
  test.each<[string, Partial<JobOffer>, Partial<EvaluationContext>, SkipReason | 'accept']>([
    ['fits, pays exactly the policy, deadline reachable', {}, {}, 'accept'],
    ['reward one wei under the policy', { reward: 999n }, {}, SkipReason.Price],
    ['model larger than the largest trainable', { modelBytes: 10_001n }, {}, SkipReason.ModelTooLarge],
    ['memory needed (16 x model) over idle memory', { modelBytes: 6251n }, {}, SkipReason.Capacity],
    ['memory exactly fits', { modelBytes: 6250n }, {}, 'accept'],
    ['no idle compute', {}, { idle: { flopsPerSecond: 0n, memoryBytes: 100_000n, maxModelBytes: 10_000n } }, SkipReason.Capacity],
    ['deadline exactly reachable with margin', { deadline: 70n }, {}, 'accept'],
    ['deadline one second short', { deadline: 69n }, {}, SkipReason.Deadline],
    ['deadline already passed', { deadline: 10n }, { now: 20n }, SkipReason.Deadline],
    ['slow steps miss the deadline', { stepSeconds: 100 }, {}, SkipReason.Deadline],
    ['zero steps', { steps: 0n, reward: 0n }, {}, SkipReason.Input],
  ])('%s', (_name, o, c, want) => {
    const d = evaluateJob(offer(o), ctx(c));
    expect(d.type === 'accept' ? 'accept' : d.reason).toBe(want);
    if (d.type === 'skip') expect(d.detail.length).toBeGreaterThan(0);
  });

  test('idle capacity subtracts what local and network jobs hold, floored at zero', () => {
    const total = { flopsPerSecond: 100n, memoryBytes: 1000n, maxModelBytes: 50n };
    expect(idleCapacity(total, { flopsPerSecond: 30n, memoryBytes: 2000n })).toEqual({ flopsPerSecond: 70n, memoryBytes: 0n, maxModelBytes: 50n });
    const busy = evaluateJob(offer(), ctx({ idle: idleCapacity({ flopsPerSecond: 10n, memoryBytes: 100_000n, maxModelBytes: 10_000n }, { flopsPerSecond: 0n, memoryBytes: 90_000n }) }));
    expect(busy).toMatchObject({ type: 'skip', reason: SkipReason.Capacity });
  });
});
