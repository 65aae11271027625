import { SchedulerCore, type SchedulerEvent } from './core.js';
import { JobExistsError, JobNotFoundError, JobPhaseError, WorkerProtocolError } from './errors.js';
import { GB, profile, uniformModel } from './testing.js';
import type { JobSpec } from './types.js';

// The service core with an injected clock: deterministic versions of what the gRPC tests show.

const big: JobSpec = { model: { type: 'chain', chain: uniformModel(6, 4) }, stages: 3 }; // 24 GB over three 10 GB devices
const small = (priority = 0, source: 'local' | 'network' = 'local'): JobSpec => ({ model: { type: 'chain', chain: uniformModel(1, 6) }, priority, source });

function setup(workers = 3): { core: SchedulerCore; events: SchedulerEvent[] } {
  const events: SchedulerEvent[] = [];
  const core = new SchedulerCore({
    heartbeatTimeoutMs: 1000,
    events: { emit: (e) => events.push(e) },
    modelResolver: { resolve: (ref) => (ref === 'big' ? uniformModel(6, 4) : undefined) },
  });
  for (let i = 1; i <= workers; i++) core.registerWorker(`w${i}`, profile(10, 100), 0);
  return { core, events };
}

describe('SchedulerCore', () => {
  test('pending jobs are admitted by priority, local before network, then submission order', () => {
    // One 10 GB device fits one 6 GB job at a time.
    const { core } = setup(1);
    core.submitJob('holder', small(), 0);
    const waiting: [string, JobSpec][] = [
      ['net-p5', small(5, 'network')],
      ['loc-p1', small(1)],
      ['loc-p5-first', small(5)],
      ['loc-p5-second', small(5)],
    ];
    // Submitted in this order: the two local priority-5 jobs tie and go by submission order.
    for (const [id, spec] of waiting) expect(core.submitJob(id, spec, 1).phase).toBe('Pending');
    const order: string[] = [];
    let current = 'holder';
    for (let t = 2; t < 7; t++) {
      core.cancelJob(current, t);
      const next = core.listJobs('Planned')[0];
      if (!next) break;
      order.push(next.id);
      current = next.id;
    }
    expect(order).toEqual(['loc-p5-first', 'loc-p5-second', 'net-p5', 'loc-p1']);
  });

  test('lost worker: release, re-plan on the rest, or Pending with the planner\'s reason', () => {
    const { core, events } = setup(4);
    const job = core.submitJob('j', big, 0);
    expect(job.phase).toBe('Planned');
    const used = job.plan!.stages.map((s) => s.deviceId);
    const spare = ['w1', 'w2', 'w3', 'w4'].find((w) => !used.includes(w))!;
    // Everybody but used[0] keeps beating.
    for (const w of ['w1', 'w2', 'w3', 'w4']) if (w !== used[0]) core.heartbeat(w, undefined, 900);
    expect(core.tick(1000).lost).toBe(0);
    events.length = 0;
    expect(core.tick(1001)).toEqual({ lost: 1, nextCheckMs: 1900 });
    expect(events.map((e) => e.type)).toEqual(['worker-lost', 'job-released', 'job-pending', 'job-reserved']);
    const again = core.getJob('j');
    expect([again.phase, again.reason, again.attempts]).toEqual(['Planned', 'Replanned', 2]);
    expect(again.plan!.stages.map((s) => s.deviceId)).toContain(spare);
    expect(core.ledger.heldBytes(used[0]!)).toBe(0);

    core.tick(1901); // the other three never beat again
    const pending = core.getJob('j');
    expect([pending.phase, pending.reason, pending.plan]).toEqual(['Pending', 'WorkerLost', undefined]);
    expect(pending.message).toMatch(/no live worker has free memory/);
    expect(core.ledger.jobIds()).toEqual([]);
  });

  test('registering enough capacity admits a pending job', () => {
    const { core } = setup(2);
    expect(core.submitJob('j', big, 0).phase).toBe('Pending');
    expect(core.getJob('j').message).toMatch(/no plan fits the free capacity of the live fleet \(2 devices\)/);
    core.registerWorker('w3', profile(10), 5);
    expect(core.getJob('j').phase).toBe('Planned');
  });

  test.each([
    ['duplicate id', (c: SchedulerCore) => c.submitJob('dup', small(), 0), JobExistsError],
    ['unknown job', (c: SchedulerCore) => c.getJob('x'), JobNotFoundError],
    ['cancel a failed job', (c: SchedulerCore) => c.cancelJob('failed', 0), JobPhaseError],
    ['report for a stage on another worker', (c: SchedulerCore) => c.reportStage('w9', 'dup', 0, 'running', '', 0), WorkerProtocolError],
  ])('%s throws its error class', (_name, act, cls) => {
    const { core } = setup();
    core.submitJob('dup', small(), 0);
    core.submitJob('failed', small(), 0);
    const f = core.getJob('failed');
    core.reportStage(f.plan!.stages[0]!.deviceId, 'failed', 0, 'failed', 'OOM', 0);
    expect(core.getJob('failed')).toMatchObject({ phase: 'Failed', reason: 'StageFailed', message: expect.stringMatching(/OOM/) });
    expect(() => act(core)).toThrow(cls);
  });

  test('model references go through the resolver', () => {
    const { core } = setup();
    expect(core.submitJob('r', { model: { type: 'ref', ref: 'big' }, stages: 3 }, 0).phase).toBe('Planned');
    expect(core.listFleet().map((w) => w.freeBytes)).toEqual(core.listFleet().map((w) => 10 * GB - w.reservedBytes));
  });
  test('a job submitted with its own fleet (the operator sends Nodes) reserves there; a Pending one is admitted on that fleet when it frees', () => {
    const { core } = setup(0);
    const node = (id: string) => ({ id, name: 'n', flops: 1e14, memoryBytes: 10 * GB, linkBandwidth: 1e10, linkLatency: 1e-5 });
    const fleet = [node('n1/0'), node('n2/0')];
    expect(core.submitJob('a', small(), 0, fleet).phase).toBe('Planned');
    expect(core.ledger.jobIds()).toEqual(['a']);
    const heldBy = (id: string) => core.ledger.holdsOf(id).map((h) => h.deviceId);
    expect(core.submitJob('b', small(), 1, fleet).phase).toBe('Planned');
    expect(heldBy('b')).not.toEqual(heldBy('a')); // 6 + 6 GB do not fit one 10 GB device
    const c = core.submitJob('c', small(), 2, fleet);
    expect([c.phase, c.message]).toEqual(['Pending', expect.stringMatching(/^no plan fits the given fleet: all 2 device\(s\) are fully reserved|short by/)]);
    const freed = heldBy('a');
    core.cancelJob('a', 3);
    expect(core.getJob('c').phase).toBe('Planned');
    expect(heldBy('c')).toEqual(freed);
    expect(core.listFleet()).toEqual([]); // node devices are ledger capacity, not registered workers
  });
});
