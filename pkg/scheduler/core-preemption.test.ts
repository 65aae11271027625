import { SchedulerCore, type SchedulerEvent } from './core.js';
import { JobPhaseError } from './errors.js';
import { profile, uniformModel } from './testing.js';
import type { JobSpec } from './types.js';

// Preemption in the service core, with an injected clock: local jobs take capacity from network jobs.

const job = (gb: number, source: 'local' | 'network', priority = 0): JobSpec => ({ model: { type: 'chain', chain: uniformModel(1, gb) }, source, priority });
const GRACE = 5000;

function setup(workers = 1): { core: SchedulerCore; events: SchedulerEvent[] } {
  const events: SchedulerEvent[] = [];
  const core = new SchedulerCore({ heartbeatTimeoutMs: 1e9, preemptionGraceMs: GRACE, events: { emit: (e) => events.push(e) } });
  for (let i = 1; i <= workers; i++) core.registerWorker(`w${i}`, profile(10, 100), 0);
  return { core, events };
}

test('local job preempts the network job: notice, checkpoint confirmed, swap, then the network job is re-admitted', () => {
  const { core, events } = setup();
  expect(core.submitJob('net', job(6, 'network'), 0).phase).toBe('Planned');
  const local = core.submitJob('local', job(6, 'local'), 10);
  expect(local).toMatchObject({ phase: 'Pending', reason: 'WaitingForPreemption' });
  // The network job keeps its hold until it confirms; the notice is on the job the holder polls.
  expect(core.getJob('net')).toMatchObject({ phase: 'Planned', preemption: { byJobId: 'local', requestedAtMs: 10, graceEndsAtMs: 10 + GRACE } });
  expect(events).toContainEqual({ type: 'job-preempting', jobId: 'net', byJobId: 'local', graceEndsAtMs: 10 + GRACE });
  expect(core.ledger.jobIds()).toEqual(['net']);

  const after = core.reportJob('net', 'checkpointed', 'step 4', 20);
  expect(after).toMatchObject({ phase: 'Pending', reason: 'Preempted' });
  expect(after.preemption).toBeUndefined();
  expect(core.getJob('local').phase).toBe('Planned');
  expect(core.ledger.jobIds()).toEqual(['local']);

  // The local job finishes: the network job gets the capacity back (a second plan).
  core.reportJob('local', 'complete', 'done', 30);
  expect(core.getJob('local')).toMatchObject({ phase: 'Complete', reason: 'HolderComplete' });
  expect(core.getJob('net')).toMatchObject({ phase: 'Planned', reason: 'Replanned', attempts: 2 });
});

test('no confirmation within the grace period: the hold is released by tick() anyway', () => {
  const { core, events } = setup();
  core.submitJob('net', job(6, 'network'), 0);
  core.submitJob('local', job(6, 'local'), 0);
  core.tick(GRACE - 1);
  expect(core.getJob('net').phase).toBe('Planned');
  core.tick(GRACE);
  expect(core.getJob('net')).toMatchObject({ phase: 'Pending', reason: 'Preempted' });
  const released = events.find((e) => e.type === 'job-released' && e.jobId === 'net');
  expect(released).toMatchObject({ reason: 'Preempted', message: expect.stringMatching(/no checkpoint confirmed/) });
  expect(core.getJob('local').phase).toBe('Planned');
  // A late confirmation is harmless.
  expect(core.reportJob('net', 'checkpointed', '', GRACE + 1).phase).toBe('Pending');
});

test('only what is needed is preempted, whole gangs, lowest priority first; a local job never preempts a local one', () => {
  const { core } = setup(2);
  core.submitJob('net-lo', job(6, 'network', 0), 0);
  core.submitJob('net-hi', job(6, 'network', 3), 1);
  core.submitJob('local-a', job(3, 'local'), 2); // fits beside one of them
  expect(core.listJobs('Planned').map((j) => j.id)).toEqual(['net-lo', 'net-hi', 'local-a']);
  core.submitJob('local-b', job(6, 'local'), 3);
  expect(core.listJobs().filter((j) => j.preemption).map((j) => j.id)).toEqual(['net-lo']);
  expect(core.getJob('local-a').preemption).toBeUndefined();

  // A second local job that only a local job could make room for waits without preempting.
  const { core: c2 } = setup();
  c2.submitJob('l1', job(6, 'local'), 0);
  expect(c2.submitJob('l2', job(6, 'local', 9), 1)).toMatchObject({ phase: 'Pending', reason: 'Unschedulable' });
  expect(c2.getJob('l1').preemption).toBeUndefined();
});

test('capacity freed by one of two victims is kept for the preemptor, not taken by a network job waiting behind it', () => {
  const { core } = setup();
  core.submitJob('net-a', job(4, 'network'), 0);
  core.submitJob('net-b', job(4, 'network'), 1);
  core.submitJob('local', job(9, 'local'), 2);
  expect(core.listJobs().filter((j) => j.preemption).map((j) => j.id)).toEqual(['net-a', 'net-b']);
  core.submitJob('net-c', job(4, 'network'), 3);
  core.reportJob('net-a', 'checkpointed', '', 4);
  expect(core.getJob('net-c').phase).toBe('Pending'); // 6 GB are free, but they are the local job's
  expect(core.getJob('local').phase).toBe('Pending');
  core.reportJob('net-b', 'checkpointed', '', 5);
  expect(core.getJob('local').phase).toBe('Planned');
  expect(core.listJobs('Pending').map((j) => j.id)).toEqual(['net-a', 'net-b', 'net-c']);
});

test('the preemptor is cancelled while waiting: the notice is withdrawn and the network job keeps running', () => {
  const { core } = setup();
  core.submitJob('net', job(6, 'network'), 0);
  core.submitJob('local', job(6, 'local'), 1);
  core.cancelJob('local', 2);
  expect(core.getJob('net').preemption).toBeUndefined();
  core.tick(GRACE * 2);
  expect(core.getJob('net').phase).toBe('Planned');
});

test('holder reports: checkpointed without a notice, or on a finished job, is refused', () => {
  const { core } = setup();
  core.submitJob('net', job(6, 'network'), 0);
  expect(() => core.reportJob('net', 'checkpointed', '', 1)).toThrow(JobPhaseError);
  core.reportJob('net', 'failed', 'loss diverged', 2);
  expect(core.getJob('net')).toMatchObject({ phase: 'Failed', reason: 'HolderFailed', message: 'loss diverged' });
  expect(() => core.reportJob('net', 'complete', '', 3)).toThrow(JobPhaseError);
});
