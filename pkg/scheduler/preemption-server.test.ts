import * as grpc from '@grpc/grpc-js';
import { SchedulerClient, SchedulerServer, type JobSpec, type WorkerInbound, type WorkerSession } from './index.js';
import { eventually, profile, uniformModel } from './testing.js';

// Integration: preemption through the real gRPC server on loopback. One 10 GB worker; a 6 GB
// network job holds it when a 6 GB local job arrives. Real time: ticks every 50 ms.

const net: JobSpec = { model: { type: 'chain', chain: uniformModel(1, 6, 'net') }, source: 'network' };
const local: JobSpec = { model: { type: 'chain', chain: uniformModel(1, 6, 'local') }, source: 'local' };
const GRACE_MS = 1500;

async function status(p: Promise<unknown>): Promise<{ code?: number; details?: string }> {
  const err = (await p.then(() => undefined, (e: unknown) => e)) as grpc.ServiceError | undefined;
  return { code: err?.code, details: err?.details };
}

describe('preemption over gRPC', () => {
  let server: SchedulerServer;
  let client: SchedulerClient;
  let worker: WorkerSession;
  let beat: NodeJS.Timeout;
  const lines: string[] = [];

  beforeAll(async () => {
    server = new SchedulerServer({ host: '127.0.0.1', port: 0, heartbeatTimeoutMs: 60_000, tickIntervalMs: 50, preemptionGraceMs: GRACE_MS, log: (l) => lines.push(l) });
    client = new SchedulerClient(`127.0.0.1:${await server.start()}`);
    worker = client.connectWorker('w1', profile(10));
    await worker.next((m) => m.type === 'ack');
    beat = setInterval(() => worker.heartbeat(), 200);
  });

  afterAll(async () => {
    clearInterval(beat);
    worker.cancel();
    client.close();
    await server.stop(500);
  });

  const revocationOf = (jobId: string) => (m: WorkerInbound) => m.type === 'revocation' && m.jobId === jobId;
  const assignmentOf = (jobId: string, attempt: number) => (m: WorkerInbound) => m.type === 'assignment' && m.jobId === jobId && m.attempt === attempt;

  test('notice on the polled job, ReportJob(CHECKPOINTED) swaps the holds, the network job is re-admitted after', async () => {
    expect((await client.submitJob('net-1', net)).phase).toBe('Planned');
    await worker.next(assignmentOf('net-1', 1), 10_000);
    expect(await status(client.reportJob('net-1', 'checkpointed'))).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: expect.stringMatching(/no preemption was requested/) });

    expect(await client.submitJob('local-1', local)).toMatchObject({ phase: 'Pending', reason: 'WaitingForPreemption' });
    const noticed = await client.getJob('net-1');
    expect(noticed.phase).toBe('Planned');
    expect(noticed.preemption).toMatchObject({ byJobId: 'local-1' });
    expect(noticed.preemption!.graceEndsAtMs - noticed.preemption!.requestedAtMs).toBe(GRACE_MS);

    const yielded = await client.reportJob('net-1', 'checkpointed', 'checkpoint at step 3');
    expect(yielded).toMatchObject({ phase: 'Pending', reason: 'Preempted' });
    expect(yielded.preemption).toBeUndefined();
    expect(await worker.next(revocationOf('net-1'), 10_000)).toMatchObject({ code: 'Preempted', reason: expect.stringMatching(/^Preempted: preempted by "local-1"; checkpoint confirmed \(checkpoint at step 3\)/) });
    await worker.next(assignmentOf('local-1', 1), 10_000);
    expect((await client.getJob('local-1')).phase).toBe('Planned');

    expect((await client.reportJob('local-1', 'complete', 'done')).phase).toBe('Complete');
    await worker.next(assignmentOf('net-1', 2), 10_000);
    expect(await client.getJob('net-1')).toMatchObject({ phase: 'Planned', reason: 'Replanned', attempts: 2 });
    expect(lines.some((l) => l.startsWith('job net-1 preempted by local-1: checkpoint and yield by'))).toBe(true);
    expect((await client.reportJob('net-1', 'complete')).phase).toBe('Complete');
  });

  test('a holder that never confirms loses the hold when the grace period ends (server timer)', async () => {
    expect((await client.submitJob('net-2', net)).phase).toBe('Planned');
    expect((await client.submitJob('local-2', local)).phase).toBe('Pending');
    await eventually(async () => (await client.getJob('local-2')).phase === 'Planned', 15_000, 'local-2 admitted after the grace period');
    expect(await client.getJob('net-2')).toMatchObject({ phase: 'Pending', reason: 'Preempted' });
    await client.cancelJob('local-2');
    await client.cancelJob('net-2');
  });

  test('a malformed report names the field', async () => {
    const bad = await status(new Promise((resolve, reject) => {
      const raw = (client as unknown as { client: Record<string, (req: object, cb: (e: unknown, r: unknown) => void) => void> }).client;
      raw['ReportJob']!.call(raw, { jobId: 'net-1' }, (e, r) => (e ? reject(e) : resolve(r)));
    }));
    expect(bad).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/^report: must be CHECKPOINTED, COMPLETE or FAILED/) });
  });
});
