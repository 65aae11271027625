import * as grpc from '@grpc/grpc-js';
import { SchedulerClient, SchedulerServer, type JobProgress } from './index.js';
import { profile, uniformModel } from './testing.js';

// ReportProgress over a real loopback server: validation at the boundary, NOT_FOUND, and the
// last checkpoint kept across reports that carry none.

const base: Omit<JobProgress, 'updatedAtMs'> = { step: 1, steps: 10, loss: 2.5, itemsPerSecond: 100, unit: 'tokens', checkpoint: '', traceRoot: 'ab', traceSteps: 1 };

describe('ReportProgress', () => {
  let server: SchedulerServer;
  let client: SchedulerClient;
  let worker: ReturnType<SchedulerClient['connectWorker']>;

  beforeAll(async () => {
    server = new SchedulerServer({ host: '127.0.0.1', port: 0, clock: () => 1234 });
    client = new SchedulerClient(`127.0.0.1:${await server.start()}`);
    worker = client.connectWorker('w0', profile(10));
    await worker.next((m) => m.type === 'ack');
    await client.submitJob('j', { model: { type: 'chain', chain: uniformModel(2, 0.001) }, stages: 1 });
  });

  afterAll(async () => {
    worker.cancel();
    client.close();
    await server.stop(200);
  });

  test('keeps the last report on the job, with the last checkpoint when a report carries none', async () => {
    expect((await client.getJob('j')).progress).toBeUndefined();
    await client.reportProgress('j', { ...base, step: 5, checkpoint: '/ck/step-5' });
    const job = await client.reportProgress('j', { ...base, step: 6, loss: 2.25 });
    expect(job.progress).toEqual({ ...base, step: 6, loss: 2.25, checkpoint: '/ck/step-5', updatedAtMs: 1234 });
    expect((await client.listJobs()).find((j) => j.id === 'j')!.progress!.step).toBe(6);
  });

  test.each([
    { name: 'unknown job', job: 'nope', progress: base, code: grpc.status.NOT_FOUND, details: /nope/ },
    { name: 'step past steps', job: 'j', progress: { ...base, step: 11 }, code: grpc.status.INVALID_ARGUMENT, details: /progress\.step.*past steps/ },
    { name: 'negative rate', job: 'j', progress: { ...base, itemsPerSecond: -1 }, code: grpc.status.INVALID_ARGUMENT, details: /progress\.items_per_second/ },
    { name: 'loss not finite', job: 'j', progress: { ...base, loss: Number.NaN }, code: grpc.status.INVALID_ARGUMENT, details: /progress\.loss: must be finite/ },
  ])('rejects $name', async ({ job, progress, code, details }) => {
    const err = (await client.reportProgress(job, progress).then(() => undefined, (e: unknown) => e)) as grpc.ServiceError;
    expect({ code: err.code, details: err.details }).toEqual({ code, details: expect.stringMatching(details) });
  });
});
