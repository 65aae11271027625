/**
 * The bridge daemon's core loop, one tick at a time (STYLE 6: the caller sleeps between ticks).
 *   register()  registers the supplier with the cluster's capacity, or updates it.
 *   poll()      reads JobPosted logs from the cursor, evaluates each unhandled job (evaluate.ts)
 *               and accepts the ones that fit; each handled event is recorded before the next.
 *   work()      advances jobs in flight: train + commit roots + submit; after the challenge
 *               window, finalize and claim.
 * All state lives in the StateStore file, so a new instance with the same file resumes.
 */
import { EventLog, type Log, type Provider, type Signer, type TransactionReceipt } from 'ethers';
import { JobState, PriceUnit, ReleaseReason, type Capacity, type JobMarketClient, type SupplierRegistryClient } from '../chain/index.js';
import { DEFAULT_MEMORY_PER_MODEL_BYTE, idleCapacity, type CapacitySource, type ClusterCapacity, type LoadSource } from './capacity.js';
import { ActivePhase, advance, initialState, markHandled, unhandled, type ActiveJob, type BridgeState, type StateStore } from './cursor.js';
import { evaluateJob, SkipReason, type PricePolicy } from './evaluate.js';
import { JobAbandonedError, JobInputError, JobSpecError, RunPendingError } from './errors.js';
import { parseJobSpec, type JobIntake } from './intake.js';
import { SchedulerLease, clipDetail, networkJobSpec, type LeaseClient } from './lease.js';
import type { JobRunner, RunnableJob } from './runner.js';

/** Predicts seconds per optimizer step of a model on the idle capacity (e.g. pkg/costmodel). */
export interface StepTimePredictor {
  stepSeconds(modelBytes: bigint, idle: ClusterCapacity): number;
}

/** Everything the bridge reports; `skipped` carries the reason. Never holds secrets. */
export type BridgeEvent =
  | { type: 'registered'; supplier: string; stake: bigint }
  | { type: 'capacity-updated'; supplier: string }
  | { type: 'skipped'; jobId: bigint; reason: SkipReason; detail: string }
  | { type: 'accepted'; jobId: bigint; predictedSeconds: number }
  | { type: 'root-committed'; jobId: bigint; index: number; root: string }
  | { type: 'submitted'; jobId: bigint; finalTraceRoot: string; resultDigest: string; challengeEndsAt: bigint }
  | { type: 'released'; jobId: bigint; code: ReleaseReason; reason: string }
  /** A local job took the capacity: checkpoint written at `step`, capacity yielded. */
  | { type: 'preempted'; jobId: bigint; byJobId: string; step: number; steps: number }
  | { type: 'resumed'; jobId: bigint; step: number; waitedMs: number }
  | { type: 'dropped'; jobId: bigint; detail: string }
  | { type: 'finalized'; jobId: bigint; gasPaid: bigint }
  | { type: 'claimed'; amount: bigint; gasPaid: bigint };

export interface BridgeDeps {
  signer: Signer;
  provider: Provider;
  registry: SupplierRegistryClient;
  market: JobMarketClient;
  store: StateStore;
  capacity: CapacitySource;
  load: LoadSource;
  runner: JobRunner;
  predictor: StepTimePredictor;
  /**
   * The cluster scheduler (pkg/scheduler SchedulerClient). With it, each network job holds its
   * capacity as a scheduler job of source `network`, so local jobs preempt it (lease.ts); without
   * it, the bridge trains without asking anyone.
   * @default undefined
   */
  scheduler?: LeaseClient;
  /** @default ignore */
  log?: (e: BridgeEvent) => void;
}

export interface BridgeOptions {
  /** Stake to hold in the registry, wei (topped up with addStake if below). */
  stake: bigint;
  /** Acceptance price policy. */
  policy: PricePolicy;
  /** First block to read when no state file exists. @default 0 */
  fromBlock?: number;
  /** Training memory per parameter byte. @default 16 */
  memoryPerModelByte?: bigint;
  /** Seconds kept free before a deadline. @default 60 */
  marginSeconds?: number;
  /** Most blocks per eth_getLogs call (public RPC endpoints cap the span). @default 2000 */
  maxBlockRange?: number;
  /** How often a preempted job polls the scheduler. @default 250 */
  leasePollMs?: number;
}

export class Bridge {
  #state: BridgeState | undefined;
  #address: string | undefined;
  constructor(private readonly deps: BridgeDeps, private readonly opts: BridgeOptions) {}

  private emit(e: BridgeEvent): void {
    this.deps.log?.(e);
  }

  async address(): Promise<string> {
    this.#address ??= await this.deps.signer.getAddress();
    return this.#address;
  }

  async state(): Promise<BridgeState> {
    this.#state ??= (await this.deps.store.load()) ?? initialState(this.opts.fromBlock ?? 0);
    return this.#state;
  }

  private async save(s: BridgeState): Promise<void> {
    await this.deps.store.save(s);
    this.#state = s;
  }

  private async chainTime(): Promise<bigint> {
    const b = await this.deps.provider.getBlock('latest');
    return BigInt(b?.timestamp ?? 0);
  }

  /** Registers with the cluster's capacity and the configured stake, or updates capacity and tops up stake. */
  async register(): Promise<void> {
    const me = await this.address();
    const c = await this.deps.capacity.capacity();
    const cap: Capacity = { ...c, price: this.opts.policy.minWeiPerStep, priceUnit: PriceUnit.PerStep };
    const reg = this.deps.registry.connect(this.deps.signer);
    if (!(await reg.isRegistered(me))) {
      await reg.register(cap, this.opts.stake);
      this.emit({ type: 'registered', supplier: me, stake: this.opts.stake });
      return;
    }
    await reg.updateCapacity(cap);
    const info = await reg.getSupplier(me);
    if (info.stake < this.opts.stake) await reg.addStake(this.opts.stake - info.stake);
    this.emit({ type: 'capacity-updated', supplier: me });
  }

  /** Handles new JobPosted events, in block ranges of at most maxBlockRange; returns the job ids handled. */
  async poll(): Promise<bigint[]> {
    const latest = await this.deps.provider.getBlockNumber();
    const range = Math.max(1, this.opts.maxBlockRange ?? 2000);
    const handled: bigint[] = [];
    for (let s = await this.state(); s.nextBlock <= latest; s = await this.state()) {
      handled.push(...(await this.pollRange(s.nextBlock, Math.min(latest, s.nextBlock + range - 1))));
    }
    return handled;
  }

  private async pollRange(from: number, to: number): Promise<bigint[]> {
    let s = await this.state();
    const logs = await this.deps.market.contract.queryFilter(this.deps.market.contract.filters.JobPosted!(), from, to);
    const events = logs.map((l) => ({ blockNumber: l.blockNumber, jobId: BigInt(l.topics[1] ?? 0), intake: parsePosted(l) }));
    const handled: bigint[] = [];
    for (const e of unhandled(s, events)) {
      let active: ActiveJob | undefined;
      if (e.intake instanceof JobSpecError) {
        // Malformed metadata: skipped before any fetch; marked handled like any other event, so
        // neither the next poll nor a restart evaluates it again.
        this.emit({ type: 'skipped', jobId: e.jobId, reason: SkipReason.Spec, detail: e.intake.message });
      } else {
        active = await this.handle(e.intake.job, e.intake.reward, e.intake.deadline);
      }
      s = markHandled(s, e);
      if (active) s = { ...s, active: { ...s.active, [active.jobId]: active } };
      await this.save(s);
      handled.push(e.jobId);
    }
    await this.save(advance(s, to));
    return handled;
  }

  /** Idempotent: re-reads the job on chain, so a replayed event never accepts twice. */
  private async handle(job: RunnableJob, reward: bigint, deadline: bigint): Promise<ActiveJob | undefined> {
    const me = (await this.address()).toLowerCase();
    const onChain = await this.deps.market.getJob(job.jobId);
    const record = (): ActiveJob => ({
      jobId: job.jobId.toString(), phase: ActivePhase.Accepted, modelURI: job.modelURI, dataURI: job.dataURI,
      modelDigest: job.modelDigest, dataDigest: job.dataDigest, steps: job.steps.toString(), reward: reward.toString(),
    });
    if (onChain.state !== JobState.Open) {
      if (onChain.state === JobState.Accepted && onChain.supplier.toLowerCase() === me) return record();
      this.emit({ type: 'skipped', jobId: job.jobId, reason: SkipReason.NotOpen, detail: `job is in state ${onChain.state}` });
      return undefined;
    }
    let modelBytes: bigint;
    try {
      modelBytes = (await this.deps.runner.inspect(job)).modelBytes;
    } catch (err) {
      if (!(err instanceof JobInputError)) throw err;
      this.emit({ type: 'skipped', jobId: job.jobId, reason: SkipReason.Input, detail: err.message });
      return undefined;
    }
    const idle = idleCapacity(await this.deps.capacity.capacity(), await this.deps.load.held());
    const decision = evaluateJob(
      { jobId: job.jobId, reward, steps: job.steps, deadline, modelBytes, stepSeconds: this.deps.predictor.stepSeconds(modelBytes, idle) },
      { now: await this.chainTime(), idle, policy: this.opts.policy, memoryPerModelByte: this.opts.memoryPerModelByte, marginSeconds: this.opts.marginSeconds },
    );
    if (decision.type === 'skip') {
      this.emit({ type: 'skipped', jobId: job.jobId, reason: decision.reason, detail: decision.detail });
      return undefined;
    }
    await this.deps.market.connect(this.deps.signer).accept(job.jobId);
    this.emit({ type: 'accepted', jobId: job.jobId, predictedSeconds: decision.predictedSeconds });
    return record();
  }

  /** Advances every job in flight by one phase where possible. */
  async work(): Promise<void> {
    const market = this.deps.market.connect(this.deps.signer);
    for (const a of Object.values((await this.state()).active)) {
      const jobId = BigInt(a.jobId);
      if (a.phase === ActivePhase.Accepted) {
        const onChain = await market.getJob(jobId);
        const ours = onChain.supplier.toLowerCase() === (await this.address()).toLowerCase();
        if (ours && onChain.state === JobState.Submitted) {
          // submitResult landed but its answer (or the state write) was lost: carry on from there.
          await this.setActive({ ...a, phase: ActivePhase.Submitted, challengeEndsAt: onChain.challengeEndsAt.toString() });
          continue;
        }
        if (onChain.state !== JobState.Accepted || !ours) {
          this.emit({ type: 'dropped', jobId, detail: `job is in state ${onChain.state}, no longer ours to run` });
          await this.dropActive(a.jobId);
          continue;
        }
        if ((await this.chainTime()) >= onChain.deadline) {
          this.emit({ type: 'dropped', jobId, detail: 'deadline passed before it ran; the submitter can reclaim it' });
          await this.dropActive(a.jobId);
          continue;
        }
        const job: RunnableJob = { jobId, modelURI: a.modelURI, dataURI: a.dataURI, modelDigest: a.modelDigest, dataDigest: a.dataDigest, steps: BigInt(a.steps) };
        // a job already running elsewhere is past the point of handing it back for fit or time
        const recheck = (await this.deps.runner.started?.(job)) === true ? undefined : await this.recheck(a, onChain.deadline);
        if (recheck !== undefined) {
          // Local work took the capacity (or time ran short) since accept: hand the job back now,
          // free before the deadline, rather than time out and lose the bond.
          await this.release(jobId, ReleaseReason.CapacityTaken, recheck);
          await this.dropActive(a.jobId);
          continue;
        }
        const lease = this.deps.scheduler ? await this.lease(job, onChain.deadline) : undefined;
        if (lease && (await lease.acquire(Number(job.steps))).type === 'abandon') {
          await this.dropActive(a.jobId); // released on chain by the lease, with its reason
          continue;
        }
        const already = onChain.checkpointCount;
        let result: Awaited<ReturnType<JobRunner['run']>>;
        try {
          result = await this.deps.runner.run(
            job,
            async (index, root) => {
              if (index < already) return; // committed by an earlier instance; deterministic training reproduces it
              await market.commitTraceRoot(jobId, BigInt(index), root);
              this.emit({ type: 'root-committed', jobId, index, root });
            },
            lease,
          );
        } catch (err) {
          if (err instanceof RunPendingError) continue; // runs elsewhere (Kubernetes): look again next tick
          if (err instanceof JobAbandonedError) {
            await this.dropActive(a.jobId); // released on chain by the lease, with its reason
            continue;
          }
          await lease?.finish('failed', err instanceof Error ? err.message : String(err));
          if (!(err instanceof JobInputError)) throw err;
          // Release is free before the deadline; a silent timeout slashes the bond.
          await this.release(jobId, ReleaseReason.InputUnusable, err.message);
          await this.dropActive(a.jobId);
          continue;
        }
        await lease?.finish('complete', `trained ${job.steps} steps`);
        await market.submitResult(jobId, result.finalTraceRoot, result.resultDigest);
        const challengeEndsAt = (await market.getJob(jobId)).challengeEndsAt;
        this.emit({ type: 'submitted', jobId, finalTraceRoot: result.finalTraceRoot, resultDigest: result.resultDigest, challengeEndsAt });
        await this.setActive({ ...a, phase: ActivePhase.Submitted, challengeEndsAt: challengeEndsAt.toString() });
      } else if (a.phase === ActivePhase.Submitted) {
        if ((await this.chainTime()) < BigInt(a.challengeEndsAt ?? '0')) continue;
        const job = await market.getJob(jobId);
        if (job.state === JobState.Submitted) {
          const r = await market.finalize(jobId);
          this.emit({ type: 'finalized', jobId, gasPaid: r.fee });
        } else if (job.state === JobState.Disputed) {
          continue; // the dispute game decides; the bridge waits
        }
        await this.claim();
        const s = await this.state();
        const { [a.jobId]: _done, ...rest } = s.active;
        await this.save({ ...s, active: rest, earned: job.state === JobState.Submitted || job.state === JobState.Finalized ? (BigInt(s.earned) + BigInt(a.reward)).toString() : s.earned });
      }
    }
  }

  /** Hands the job back on chain (free before the deadline) with the reason in JobReleased, and logs it. */
  private async release(jobId: bigint, code: ReleaseReason, reason: string): Promise<void> {
    await this.deps.market.connect(this.deps.signer).release(jobId, code, clipDetail(reason));
    this.emit({ type: 'released', jobId, code, reason });
  }

  /** The job's hold on capacity through the scheduler; releases on chain when it must give up. */
  private async lease(job: RunnableJob, deadline: bigint): Promise<SchedulerLease> {
    const modelBytes = (await this.deps.runner.inspect(job)).modelBytes;
    const idle = idleCapacity(await this.deps.capacity.capacity(), await this.deps.load.held());
    return new SchedulerLease({
      client: this.deps.scheduler!,
      schedulerJobId: `network-${job.jobId}`,
      spec: networkJobSpec(`network-${job.jobId}`, modelBytes, this.opts.memoryPerModelByte ?? DEFAULT_MEMORY_PER_MODEL_BYTE),
      deadline,
      chainTime: () => this.chainTime(),
      predictedSecondsPerStep: this.deps.predictor.stepSeconds(modelBytes, idle),
      marginSeconds: this.opts.marginSeconds ?? 60,
      release: (code, detail) => this.release(job.jobId, code, detail),
      pollMs: this.opts.leasePollMs,
      log: (e) => {
        if (e.type === 'preempted') this.emit({ type: 'preempted', jobId: job.jobId, byJobId: e.byJobId, step: e.step, steps: e.steps });
        else if (e.type === 'resumed') this.emit({ type: 'resumed', jobId: job.jobId, step: e.step, waitedMs: e.waitedMs });
      },
    });
  }

  /** Re-evaluates an accepted job against the capacity idle now; a reason to release it, or undefined. */
  private async recheck(a: ActiveJob, deadline: bigint): Promise<string | undefined> {
    const job = { jobId: BigInt(a.jobId), modelURI: a.modelURI, dataURI: a.dataURI, modelDigest: a.modelDigest, dataDigest: a.dataDigest, steps: BigInt(a.steps) };
    let modelBytes: bigint;
    try {
      modelBytes = (await this.deps.runner.inspect(job)).modelBytes;
    } catch (err) {
      if (err instanceof JobInputError) return err.message;
      throw err;
    }
    const idle = idleCapacity(await this.deps.capacity.capacity(), await this.deps.load.held());
    const d = evaluateJob(
      { jobId: job.jobId, reward: BigInt(a.reward), steps: job.steps, deadline, modelBytes, stepSeconds: this.deps.predictor.stepSeconds(modelBytes, idle) },
      // the price was agreed at accept; only fit and time are re-checked
      { now: await this.chainTime(), idle, policy: { minWeiPerStep: 0n }, memoryPerModelByte: this.opts.memoryPerModelByte, marginSeconds: this.opts.marginSeconds },
    );
    return d.type === 'skip' ? `${d.reason}: ${d.detail}` : undefined;
  }

  /** Withdraws the supplier's credits, if any. */
  async claim(): Promise<{ amount: bigint; receipt?: TransactionReceipt }> {
    const market = this.deps.market.connect(this.deps.signer);
    const amount = await market.credits(await this.address());
    if (amount === 0n) return { amount };
    const receipt = await market.claim();
    this.emit({ type: 'claimed', amount, gasPaid: receipt.fee });
    return { amount, receipt };
  }

  async tick(): Promise<void> {
    await this.poll();
    await this.work();
  }

  private async dropActive(jobId: string): Promise<void> {
    const s = await this.state();
    const { [jobId]: _gone, ...rest } = s.active;
    await this.save({ ...s, active: rest });
  }

  private async setActive(a: ActiveJob): Promise<void> {
    const s = await this.state();
    await this.save({ ...s, active: { ...s.active, [a.jobId]: a } });
  }
}

/** A JobPosted log as a typed intake, or the JobSpecError that says which field is wrong. */
function parsePosted(l: Log): JobIntake | JobSpecError {
  const jobId = BigInt(l.topics[1] ?? 0);
  if (!(l instanceof EventLog)) return new JobSpecError(jobId, 'log', 'JobPosted log does not decode with this market\'s ABI');
  try {
    const spec = l.args[4] as { toObject?: () => unknown } | undefined;
    return parseJobSpec(jobId, l.args[2] as bigint, spec?.toObject?.() ?? spec);
  } catch (err) {
    if (err instanceof JobSpecError) return err;
    throw err;
  }
}
