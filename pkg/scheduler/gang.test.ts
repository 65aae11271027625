import type { Plan } from '../planner/index.js';
import { CapacityLedger, SchedulerClient, SchedulerServer, type JobSpec, type JobView, type WorkerSession } from './index.js';
import { profile, uniformModel } from './testing.js';

// Gang concurrency: many SubmitJob calls in flight at once over a real loopback server. However
// they interleave, every job ends either holding all of its stages or nothing.

const WORKERS = 4; // 10 GB each, 40 GB in all

/** Jobs of mixed sizes: most need most of the fleet, a few fit beside others. */
function specFor(i: number): JobSpec {
  const big = i % 5 !== 4;
  return { model: { type: 'chain', chain: big ? uniformModel(8, 3.5, `big-${i}`) : uniformModel(2, 3, `small-${i}`) }, priority: i % 3 };
}

describe('gang reservation under concurrent SubmitJob', () => {
  let server: SchedulerServer;
  let client: SchedulerClient;
  const sessions: WorkerSession[] = [];

  beforeAll(async () => {
    server = new SchedulerServer({ host: '127.0.0.1', port: 0, heartbeatTimeoutMs: 60_000 });
    client = new SchedulerClient(`127.0.0.1:${await server.start()}`);
    for (let w = 0; w < WORKERS; w++) {
      const s = client.connectWorker(`w${w}`, profile(10, 100 + w));
      await s.next((m) => m.type === 'ack');
      sessions.push(s);
    }
  });

  afterAll(async () => {
    for (const s of sessions) s.cancel();
    client.close();
    await server.stop(500);
  });

  /** Checks the invariants from both sides: the API's view and the ledger itself. */
  async function checkInvariants(): Promise<JobView[]> {
    const jobs = await client.listJobs();
    const fleet = await client.listFleet();
    const ledger = server.core.ledger;
    const expected = new Map<string, number>();
    for (const job of jobs) {
      const holds = ledger.holdsOf(job.id);
      if (job.phase === 'Planned' || job.phase === 'Running') {
        // Fully reserved: exactly the plan's per-device requirement, on every stage's device.
        const need = CapacityLedger.requirements(job.plan as Plan);
        expect(new Map(holds.map((h) => [h.deviceId, h.bytes]))).toEqual(need);
        for (const [d, b] of need) expected.set(d, (expected.get(d) ?? 0) + b);
      } else {
        expect(job.plan).toBeUndefined();
        expect(holds).toEqual([]); // no partial holds, ever
      }
    }
    for (const w of fleet) {
      expect(w.reservedBytes).toBe(expected.get(w.id) ?? 0);
      expect(w.reservedBytes).toBeLessThanOrEqual(w.profile.memoryBytes);
      expect(ledger.heldBytes(w.id)).toBe(w.reservedBytes);
    }
    return jobs;
  }

  test('20 simultaneous submits: each job is fully reserved or Pending with no holds', async () => {
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => client.submitJob(`job-${i}`, specFor(i))));
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    const jobs = await checkInvariants();
    const planned = jobs.filter((j) => j.phase === 'Planned');
    const pending = jobs.filter((j) => j.phase === 'Pending');
    expect(planned.length + pending.length).toBe(20);
    // A big job needs 28 GB spread over all four 10 GB devices (two 3.5 GB layers each), so at most
    // one is reserved at a time and most jobs must wait.
    const isBig = (id: string): boolean => Number(id.split('-')[1]) % 5 !== 4;
    expect(planned.length).toBeGreaterThanOrEqual(1);
    expect(planned.filter((j) => isBig(j.id)).length).toBeLessThanOrEqual(1);
    for (const j of planned.filter((x) => isBig(x.id))) expect(j.plan!.stages).toHaveLength(WORKERS);
    expect(pending.length).toBeGreaterThanOrEqual(10);
    for (const j of pending) expect(j.reason).toBe('Unschedulable');
  });

  test('cancelling in concurrent waves admits waiting jobs without ever breaking the invariants', async () => {
    for (let round = 0; round < 30; round++) {
      const planned = (await client.listJobs()).filter((j) => j.phase === 'Planned');
      if (planned.length === 0) break;
      // Cancel everything planned and submit a few more, all at once.
      await Promise.all([
        ...planned.map((j) => client.cancelJob(j.id)),
        ...[0, 1].map((k) => client.submitJob(`late-${round}-${k}`, specFor(round + k))),
      ]);
      await checkInvariants();
    }
    const jobs = await checkInvariants();
    expect(jobs.some((j) => j.id.startsWith('late-') && j.attempts > 0)).toBe(true);
    expect(jobs.filter((j) => j.phase === 'Cancelled').length).toBeGreaterThan(20);
  });
});
