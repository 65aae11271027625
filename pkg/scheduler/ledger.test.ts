import type { Plan, StagePlan } from '../planner/index.js';
import { CapacityExhaustedError } from './errors.js';
import { CapacityLedger } from './ledger.js';

/** A plan whose stages sit on the given devices with the given memory; nothing else matters here. */
function planOn(stages: [string, number][]): Plan {
  return {
    method: 'exact',
    schedule: '1f1b',
    microBatches: 8,
    stages: stages.map(([deviceId, memoryBytes], index): StagePlan => ({
      index, deviceId, deviceName: deviceId, layers: [index, index + 1], computeMs: 1, sendMs: 0, recvMs: 0, stageMs: 1, inFlight: 1, memoryBytes, memoryAvailable: memoryBytes,
    })),
    bottleneckStage: 0, bottleneckMs: 1, predictedStepMs: 1, lowerBoundMs: 1, gap: 1, microBatchesPerSecond: 1,
  };
}

/** Every device's held bytes must equal the sum of its jobs' holds. */
function expectConsistent(ledger: CapacityLedger): void {
  const sums = new Map<string, number>();
  for (const jobId of ledger.jobIds()) for (const h of ledger.holdsOf(jobId)) sums.set(h.deviceId, (sums.get(h.deviceId) ?? 0) + h.bytes);
  for (const d of ledger.devices()) expect(d.heldBytes).toBe(sums.get(d.deviceId) ?? 0);
}

type Step =
  | { op: 'reserve'; job: string; stages: [string, number][]; short?: { device: string; required: number; available: number } }
  | { op: 'release'; job: string; freed: number };

const cases: { name: string; capacity: Record<string, number>; steps: Step[]; held: Record<string, number> }[] = [
  {
    name: 'one job on two devices',
    capacity: { a: 100, b: 100 },
    steps: [{ op: 'reserve', job: 'j1', stages: [['a', 60], ['b', 40]] }],
    held: { a: 60, b: 40 },
  },
  {
    name: 'two jobs share a device while the sum fits',
    capacity: { a: 100, b: 100 },
    steps: [
      { op: 'reserve', job: 'j1', stages: [['a', 60], ['b', 40]] },
      { op: 'reserve', job: 'j2', stages: [['b', 60], ['a', 40]] },
    ],
    held: { a: 100, b: 100 },
  },
  {
    name: 'gang: second job short on one device takes nothing anywhere',
    capacity: { a: 100, b: 100, c: 100 },
    steps: [
      { op: 'reserve', job: 'j1', stages: [['b', 70]] },
      { op: 'reserve', job: 'j2', stages: [['a', 50], ['b', 50], ['c', 50]], short: { device: 'b', required: 50, available: 30 } },
    ],
    held: { b: 70 },
  },
  {
    name: 'two stages of one job on the same device are summed',
    capacity: { a: 100 },
    steps: [{ op: 'reserve', job: 'j1', stages: [['a', 60], ['a', 50]], short: { device: 'a', required: 110, available: 100 } }],
    held: {},
  },
  {
    name: 'unknown device has no capacity',
    capacity: { a: 100 },
    steps: [{ op: 'reserve', job: 'j1', stages: [['a', 10], ['zz', 1]], short: { device: 'zz', required: 1, available: 0 } }],
    held: {},
  },
  {
    name: 'release frees exactly the job\'s holds and lets another fit',
    capacity: { a: 100, b: 100 },
    steps: [
      { op: 'reserve', job: 'j1', stages: [['a', 80], ['b', 80]] },
      { op: 'reserve', job: 'j2', stages: [['a', 30]], short: { device: 'a', required: 30, available: 20 } },
      { op: 'release', job: 'j1', freed: 160 },
      { op: 'reserve', job: 'j2', stages: [['a', 30]] },
    ],
    held: { a: 30 },
  },
  {
    name: 'release of a job without holds frees nothing',
    capacity: { a: 100 },
    steps: [
      { op: 'reserve', job: 'j1', stages: [['a', 10]] },
      { op: 'release', job: 'nope', freed: 0 },
    ],
    held: { a: 10 },
  },
  {
    name: 'exact fit is allowed',
    capacity: { a: 100 },
    steps: [{ op: 'reserve', job: 'j1', stages: [['a', 100]] }],
    held: { a: 100 },
  },
];

describe('CapacityLedger', () => {
  test.each(cases)('$name', ({ capacity, steps, held }) => {
    const ledger = new CapacityLedger();
    for (const [id, bytes] of Object.entries(capacity)) ledger.setCapacity(id, bytes);
    for (const step of steps) {
      if (step.op === 'release') {
        expect(ledger.release(step.job).reduce((s, h) => s + h.bytes, 0)).toBe(step.freed);
        expect(ledger.hasHolds(step.job)).toBe(false);
      } else if (step.short) {
        const before = ledger.devices();
        let err: unknown;
        try {
          ledger.reserve(step.job, planOn(step.stages));
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(CapacityExhaustedError);
        const e = err as CapacityExhaustedError;
        expect([e.deviceId, e.requiredBytes, e.availableBytes]).toEqual([step.short.device, step.short.required, step.short.available]);
        expect(e.message).toContain(`"${step.short.device}"`);
        expect(e.message).toContain(`short by ${step.short.required - step.short.available} bytes`);
        expect(e.code).toBe(8); // RESOURCE_EXHAUSTED
        // No partial holds: the ledger is exactly as before.
        expect(ledger.devices()).toEqual(before);
        expect(ledger.hasHolds(step.job)).toBe(false);
      } else {
        const holds = ledger.reserve(step.job, planOn(step.stages));
        expect(holds.reduce((s, h) => s + h.bytes, 0)).toBe(step.stages.reduce((s, [, b]) => s + b, 0));
      }
      expectConsistent(ledger);
    }
    for (const id of Object.keys(capacity)) {
      expect(ledger.heldBytes(id)).toBe(held[id] ?? 0);
      expect(ledger.freeBytes(id)).toBe(capacity[id]! - (held[id] ?? 0));
    }
  });

  test('a removed device keeps its holds until released, and takes no new ones', () => {
    const ledger = new CapacityLedger();
    ledger.setCapacity('a', 100);
    ledger.reserve('j1', planOn([['a', 40]]));
    ledger.removeDevice('a');
    expect(ledger.jobsOn('a')).toEqual(['j1']);
    expect(ledger.freeBytes('a')).toBe(0);
    expect(() => ledger.reserve('j2', planOn([['a', 1]]))).toThrow(CapacityExhaustedError);
    ledger.release('j1');
    expect(ledger.devices()).toEqual([]);
  });

  test('a job cannot reserve twice', () => {
    const ledger = new CapacityLedger();
    ledger.setCapacity('a', 100);
    ledger.reserve('j1', planOn([['a', 10]]));
    expect(() => ledger.reserve('j1', planOn([['a', 10]]))).toThrow(/already holds/);
    expect(ledger.heldBytes('a')).toBe(10);
  });

  test('random reserve/release sequences keep held = sum of holds and never exceed capacity', () => {
    let seed = 7;
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const ledger = new CapacityLedger();
    const devices = ['a', 'b', 'c', 'd'];
    for (const d of devices) ledger.setCapacity(d, 1000);
    for (let i = 0; i < 2000; i++) {
      const job = `j${rand(30)}`;
      if (ledger.hasHolds(job)) {
        ledger.release(job);
      } else {
        const stages: [string, number][] = devices.filter(() => rand(2) === 0).map((d) => [d, 1 + rand(600)]);
        if (stages.length === 0) continue;
        const ok = ledger.check(job, planOn(stages)) === undefined;
        if (ok) ledger.reserve(job, planOn(stages));
        else expect(() => ledger.reserve(job, planOn(stages))).toThrow(CapacityExhaustedError);
        expect(ledger.hasHolds(job)).toBe(ok);
      }
      expectConsistent(ledger);
      for (const d of devices) expect(ledger.heldBytes(d)).toBeLessThanOrEqual(1000);
    }
  });
});
