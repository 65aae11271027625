import { ReleaseReason } from '../chain/index.js';
import { SchedulerCore, type HolderReport, type JobSpec } from '../scheduler/index.js';
import { profile } from '../scheduler/testing.js';
import { SchedulerLease, clipDetail, deadlineCheck, networkJobSpec, type LeaseClient, type LeaseEvent } from './lease.js';

test.each([
  { name: 'plenty of time', now: 0n, deadline: 1000n, remainingSteps: 10, secondsPerStep: 1, marginSeconds: 60, fits: true },
  { name: 'margin alone no longer fits', now: 950n, deadline: 1000n, remainingSteps: 1, secondsPerStep: 0.001, marginSeconds: 60, fits: false },
  { name: 'steps at the measured rate do not fit', now: 0n, deadline: 1000n, remainingSteps: 100, secondsPerStep: 9.5, marginSeconds: 60, fits: false },
  { name: 'exactly at the limit does not fit (strictly before the deadline)', now: 0n, deadline: 160n, remainingSteps: 100, secondsPerStep: 1, marginSeconds: 60, fits: false },
  { name: 'deadline already passed', now: 2000n, deadline: 1000n, remainingSteps: 0, secondsPerStep: 0, marginSeconds: 0, fits: false },
])('deadlineCheck: $name', ({ fits, ...o }) => {
  const d = deadlineCheck(o);
  expect(d.type).toBe(fits ? 'fits' : 'release');
  if (d.type === 'release') expect(d.detail).toMatch(/^\d+ steps left at .* s\/step \+ \d+ s margin need \d+ s; \d+ s remain before the deadline$/);
  else expect(d.slackSeconds).toBeGreaterThan(0);
});

test('clipDetail keeps details within the contract limit in UTF-8 bytes', () => {
  expect(clipDetail('short')).toBe('short');
  const long = 'é'.repeat(200); // 400 bytes
  const clipped = clipDetail(long);
  expect(new TextEncoder().encode(clipped).length).toBeLessThanOrEqual(256);
  expect(clipped.endsWith('...')).toBe(true);
  expect(clipped).not.toContain('\uFFFD');
});

/** The real scheduler core, in process, behind the LeaseClient calls (clock: a counter). */
function inProcess(core: SchedulerCore): LeaseClient & { t: number } {
  const c = {
    t: 0,
    submitJob: async (id: string, spec: JobSpec) => core.submitJob(id, spec, c.t++),
    getJob: async (id: string) => core.getJob(id),
    reportJob: async (id: string, report: HolderReport, message = '') => core.reportJob(id, report, message, c.t++),
    cancelJob: async (id: string) => core.cancelJob(id, c.t++),
  };
  return c;
}

describe('SchedulerLease against the scheduler core', () => {
  const net = networkJobSpec('n', 100_000_000n, 16n); // 1.6 GB
  const local: JobSpec = { ...net, source: 'local' };
  const setup = () => {
    const core = new SchedulerCore({ heartbeatTimeoutMs: 1e9 });
    core.registerWorker('w', profile(2), 0); // 2 GB: one job at a time
    const client = inProcess(core);
    const released: [number, string][] = [];
    const events: LeaseEvent[] = [];
    let chainNow = 1000n;
    let onSleep = (): void => {};
    const lease = new SchedulerLease({
      client, schedulerJobId: 'network-7', spec: net, deadline: 2000n, chainTime: async () => chainNow,
      predictedSecondsPerStep: 1, marginSeconds: 60, release: async (code, detail) => void released.push([code, detail]),
      sleep: async () => onSleep(), log: (e) => events.push(e),
    });
    return { core, lease, released, events, setNow: (t: bigint) => (chainNow = t), setOnSleep: (f: () => void) => (onSleep = f) };
  };

  test('preempted: confirms the checkpoint, waits while the local job runs, resumes when it is re-admitted', async () => {
    const { core, lease, released, events, setOnSleep } = setup();
    expect(await lease.acquire(50)).toEqual({ type: 'resume' });
    const progress = { step: 10, steps: 50, secondsPerStep: 0.5 };
    expect(await lease.shouldYield(progress)).toBe(false);
    core.submitJob('local', local, 100);
    expect(await lease.shouldYield(progress)).toBe(true);
    let sleeps = 0;
    setOnSleep(() => {
      if (++sleeps === 3) core.reportJob('local', 'complete', '', 200);
    });
    expect(await lease.yielded(progress)).toEqual({ type: 'resume' });
    expect(sleeps).toBe(3);
    expect(core.getJob('network-7')).toMatchObject({ phase: 'Planned', attempts: 2 });
    expect(events.map((e) => e.type)).toEqual(['preempted', 'waiting', 'resumed']);
    expect(events[0]).toMatchObject({ byJobId: 'local', step: 10 });
    expect(released).toEqual([]);
  });

  test('while waiting the deadline comes too close: released on chain (DeadlineUnreachable) and the scheduler job cancelled', async () => {
    const { core, lease, released, setOnSleep, setNow } = setup();
    await lease.acquire(50);
    core.submitJob('local', local, 100);
    await lease.shouldYield({ step: 10, steps: 50, secondsPerStep: 2 });
    // 40 steps x 2 s + 60 s = 140 s needed; the clock moves to 100 s before the deadline.
    setOnSleep(() => setNow(1900n));
    const out = await lease.yielded({ step: 10, steps: 50, secondsPerStep: 2 });
    expect(out).toMatchObject({ type: 'abandon', reason: expect.stringMatching(/^preempted at step 10: 40 steps left at 2\.00 s\/step \+ 60 s margin need 140 s; 100 s remain/) });
    expect(released).toEqual([[ReleaseReason.DeadlineUnreachable, (out as { reason: string }).reason]]);
    expect(core.getJob('network-7').phase).toBe('Cancelled');
  });

  test('the scheduler job is cancelled by someone else while waiting: released as CapacityTaken', async () => {
    const { core, lease, released, setOnSleep } = setup();
    await lease.acquire(50);
    core.submitJob('local', local, 100);
    await lease.shouldYield({ step: 5, steps: 50, secondsPerStep: 0.1 });
    setOnSleep(() => core.cancelJob('network-7', 300));
    expect((await lease.yielded({ step: 5, steps: 50, secondsPerStep: 0.1 })).type).toBe('abandon');
    expect(released.map(([code]) => code)).toEqual([ReleaseReason.CapacityTaken]);
  });

  test('the notice is withdrawn before the checkpoint is confirmed (preemptor cancelled): the run goes on', async () => {
    const { core, lease, events } = setup();
    await lease.acquire(50);
    core.submitJob('local', local, 100);
    expect(await lease.shouldYield({ step: 3, steps: 50, secondsPerStep: 0.1 })).toBe(true);
    core.cancelJob('local', 101);
    expect(await lease.yielded({ step: 3, steps: 50, secondsPerStep: 0.1 })).toEqual({ type: 'resume' });
    expect(core.getJob('network-7')).toMatchObject({ phase: 'Planned', attempts: 1 });
    expect(events).toEqual([]);
  });

  test('acquire after a restart: holds on to its own live job; a finished one with the same id gets a fresh id', async () => {
    const { core, lease } = setup();
    core.submitJob('network-7', net, 0);
    expect(await lease.acquire(50)).toEqual({ type: 'resume' });
    expect(lease.id).toBe('network-7');
    core.reportJob('network-7', 'complete', '', 1);
    const again = setup();
    again.core.submitJob('network-7', net, 0);
    again.core.reportJob('network-7', 'complete', '', 1);
    expect(await again.lease.acquire(50)).toEqual({ type: 'resume' });
    expect(again.lease.id).toBe('network-7.2');
    expect(again.core.getJob('network-7.2').phase).toBe('Planned');
  });
});
