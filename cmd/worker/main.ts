#!/usr/bin/env node
// Stage worker process: joins a worker pool over NATS and runs one job stage at a time, its ORT
// sessions in a worker thread. Started by `tessera up` (or `tessera train --stages` without --nats).
//   node dist/cmd/worker/main.js --nats nats://127.0.0.1:4222 --id w0 [--ns default] [--slowdown K]
// --slowdown K (default 1, no throttling) emulates a K times slower device: every ORT run of this
// worker's stages is followed by a wait of (K - 1) x that session's fastest run (runtime SessionOptions.slowdown).
// --scheduler HOST:PORT joins the scheduler's fleet: the worker measures itself (ORT MatMul FLOP/s
// with its slowdown, NATS latency and bandwidth, free memory), registers with that profile (over the
// catalog one of --profile FILE --device ID, a fleet file, when given), heartbeats, reports the stages
// it runs for scheduler jobs, and registers again with backoff when the scheduler goes away.
import { readFile } from 'node:fs/promises';
import { parseFleet, readProfiles } from '../../pkg/planner/index.js';
import { JobReason, type DeviceProfile } from '../../pkg/scheduler/index.js';
import { NatsBus } from '../../pkg/transport/index.js';
import { PoolWorker, SchedulerLink, measureDevice, threadCompute, type PoolStageEvent } from '../../pkg/worker/index.js';
import { UsageError, exitCodeFor, formatError } from '../tessera/errors.js';
import { numFlag, parseFlags, strFlag } from '../tessera/flags.js';

/** The catalog profile from a fleet file's device `deviceId` (the first device without one), or an empty one to be measured. */
async function catalogProfile(file: string | undefined, deviceId: string | undefined): Promise<DeviceProfile> {
  if (file === undefined) return { name: 'local', flops: 0, memoryBytes: 0, linkBandwidth: 0, linkLatency: 0, labels: {} };
  const fleet = parseFleet(await readFile(file, 'utf8'), readProfiles());
  const d = deviceId === undefined ? fleet[0] : fleet.find((x) => x.id === deviceId);
  if (!d) throw new UsageError(`--device "${deviceId}" is not in ${file} (devices: ${fleet.map((x) => x.id).join(', ')})`);
  return { name: d.name, flops: d.flops, memoryBytes: d.memoryBytes, linkBandwidth: d.linkBandwidth, linkLatency: d.linkLatency, labels: { 'tessera.dev/device': d.id } };
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    nats: { type: 'string' }, id: { type: 'string' }, ns: { type: 'string' }, slowdown: { type: 'string' },
    scheduler: { type: 'string' }, profile: { type: 'string' }, device: { type: 'string' },
  });
  const url = strFlag(values, 'nats', 'nats://127.0.0.1:4222');
  const id = strFlag(values, 'id', `w${process.pid}`);
  const ns = strFlag(values, 'ns', 'default');
  const slowdown = numFlag(values, 'slowdown', 1, 1)!;
  const bus = await NatsBus.connect({ servers: url, name: `tessera-worker-${id}` });
  const log = (line: string) => process.stdout.write(`${id}: ${line}\n`);
  const thread = threadCompute();
  // The slowdown belongs to this worker (the device it emulates), so it is stamped on every stage plan it runs.
  const schedulerAddr = values.scheduler === undefined ? undefined : strFlag(values, 'scheduler');
  let link: SchedulerLink | undefined;
  if (schedulerAddr) {
    const catalog = await catalogProfile(values.profile === undefined ? undefined : strFlag(values, 'profile'), values.device === undefined ? undefined : strFlag(values, 'device'));
    const measured = await measureDevice({ bus, slowdown });
    log(`measured: ${(measured.matmulFlops / 1e9).toFixed(2)} GFLOP/s (ORT MatMul), bus ${(measured.busLatency * 1e3).toFixed(3)} ms and ${(measured.busBandwidth / 1e6).toFixed(0)} MB/s, ${(measured.memoryAvailable / 2 ** 30).toFixed(1)} GiB available`);
    link = new SchedulerLink({
      address: schedulerAddr, workerId: id, profile: { ...catalog, measured }, log,
      stats: () => ({ utilization: worker.state.type === 'idle' ? 0 : 1, memoryUsedBytes: process.memoryUsage().rss, measuredFlops: measured.matmulFlops }),
      // A cancelled or failed scheduler job's stage is aborted here, so the worker returns to the
      // pool even when its driver is gone (e.g. train stopped with Ctrl-C). Not after a lost worker
      // (code WorkerLost): that job's driver notices the lost stage and aborts the others itself;
      // aborting first would make it blame a live stage.
      onRevoke: (jobId, reason, code) => {
        const st = worker.state;
        if (code === JobReason.WorkerLost) return;
        if (st.type === 'busy' && st.worker.spec.schedulerJob === jobId) void st.worker.abort(`the scheduler released job ${jobId}: ${reason}`);
      },
    });
  }
  // Stages of scheduler jobs are reported on the job; aborted ones are not (the driver aborted the
  // attempt; a lost worker is the scheduler's own finding).
  const onStage = (e: PoolStageEvent): void => {
    const job = e.spec.schedulerJob;
    if (!link || !job) return;
    if (e.type === 'started') link.report(job, e.stage, 'running');
    else if (e.status.type === 'stopped') link.report(job, e.stage, 'complete');
    else if (e.status.type === 'failed') link.report(job, e.stage, 'failed', e.status.message);
  };
  const worker = new PoolWorker(bus, { ns, id, compute: (plan, params, ops) => thread({ ...plan, slowdown }, params, ops), log, onStage });
  await worker.start();
  link?.start();
  log(`ready (nats ${url}, namespace ${ns}, pid ${process.pid}${slowdown > 1 ? `, slowdown ${slowdown}` : ''}${schedulerAddr ? `, scheduler ${schedulerAddr}` : ''})`);
  const stop = async () => {
    await link?.close();
    await worker.close();
    await bus.close();
  };
  return new Promise<number>((resolve) => {
    const onSignal = () => { void stop().finally(() => resolve(0)); };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // The server went away: nothing left to serve. The stage still ends first: exiting while its
    // compute thread runs ORT aborts the process (Napi::Error).
    void bus.connection.closed().then(async (err) => {
      if (err) log(`connection closed: ${err.message}`);
      await worker.close().catch(() => undefined);
      resolve(err ? 1 : 0);
    });
  });
}

main(process.argv.slice(2)).then(
  (code) => { process.exit(code); },
  (err: unknown) => {
    process.stderr.write(`tessera-worker: ${formatError(err)}\n`);
    process.exit(exitCodeFor(err));
  },
);
