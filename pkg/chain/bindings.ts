/**
 * Thin hand-written typed wrappers over ethers.Contract, one per contract. Hand-written rather than
 * generated: the surface is small, and each method can return what callers need (ids parsed from
 * events, typed structs) and turn custom-error reverts into ContractRevertError.
 * Every write waits for its receipt and returns it (`receipt.fee` is the gas paid).
 */
import { Contract, Interface, type ContractRunner, type ErrorFragment, type Log, type TransactionReceipt, type TransactionResponse } from 'ethers';
import { loadArtifact, ContractName } from './artifacts.js';
import { ContractRevertError, MissingEventError, TransactionFailedError } from './errors.js';

export const PriceUnit = { PerFlop: 0, PerStep: 1 } as const;
export type PriceUnit = (typeof PriceUnit)[keyof typeof PriceUnit];

/** Mirrors JobMarket.JobState (same order). */
export const JobState = {
  None: 0, Open: 1, Accepted: 2, Submitted: 3, Disputed: 4, Finalized: 5, Slashed: 6, Refunded: 7, Released: 8,
} as const;
export type JobState = (typeof JobState)[keyof typeof JobState];

/** Mirrors JobMarket.ReleaseReason (same order): why a supplier handed a job back. */
export const ReleaseReason = { Unspecified: 0, InputUnusable: 1, CapacityTaken: 2, DeadlineUnreachable: 3 } as const;
export type ReleaseReason = (typeof ReleaseReason)[keyof typeof ReleaseReason];

export interface Capacity {
  flopsPerSecond: bigint;
  memoryBytes: bigint;
  maxModelBytes: bigint;
  /** wei per unit */
  price: bigint;
  priceUnit: PriceUnit;
}

export interface SupplierInfo {
  registered: boolean;
  stake: bigint;
  locked: bigint;
  pendingUnstake: bigint;
  unstakeReadyAt: bigint;
  workerCount: number;
  capacity: Capacity;
}

export interface JobSpec {
  modelDigest: string;
  modelURI: string;
  dataDigest: string;
  dataURI: string;
  steps: bigint;
  /** unix seconds */
  deadline: bigint;
  /** seconds */
  challengeWindow: bigint;
}

export interface Job {
  submitter: string;
  deadline: bigint;
  challengeWindow: bigint;
  state: JobState;
  supplier: string;
  challengeEndsAt: bigint;
  checkpointCount: number;
  challenger: string;
  reward: bigint;
  bond: bigint;
  steps: bigint;
  modelDigest: string;
  dataDigest: string;
  finalTraceRoot: string;
  resultDigest: string;
}

/** Every custom error of every contract, deduplicated by selector, so a revert bubbling up from
 * the registry through the market still decodes. */
let allErrors: Interface | undefined;
function errorInterface(): Interface {
  if (allErrors !== undefined) return allErrors;
  const seen = new Map<string, ErrorFragment>();
  for (const name of [...Object.values(ContractName), 'testing/ReentrantReceiver']) {
    for (const f of new Interface(loadArtifact(name).abi as never).fragments) {
      if (f.type === 'error') seen.set((f as ErrorFragment).selector, f as ErrorFragment);
    }
  }
  allErrors = new Interface([...seen.values()]);
  return allErrors;
}

/** Finds revert data in an ethers error (it nests differently per code path). */
function revertData(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 6; depth++) {
    const data = (e as { data?: unknown }).data;
    if (typeof data === 'string' && data.startsWith('0x') && data.length >= 10) return data;
    if (data !== null && typeof data === 'object' && typeof (data as { data?: unknown }).data === 'string') return (data as { data: string }).data;
    e = (e as { error?: unknown; info?: unknown }).error ?? (e as { info?: { error?: unknown } }).info?.error;
  }
  return undefined;
}

/** Converts a custom-error revert into ContractRevertError; anything else is rethrown as is. */
export function decodeRevert(contract: string, method: string, err: unknown): unknown {
  const data = revertData(err);
  if (data === undefined) return err;
  const parsed = errorInterface().parseError(data);
  if (parsed === null) return err;
  return new ContractRevertError(contract, method, parsed.name, [...parsed.args], { cause: err });
}

abstract class Binding {
  readonly contract: Contract;
  constructor(readonly contractName: string, readonly address: string, runner: ContractRunner) {
    this.contract = new Contract(address, loadArtifact(contractName).abi as never, runner);
  }

  /** Sends `method(args)` (with `value` wei when given) and waits for a successful receipt. */
  protected async send(method: string, args: unknown[], value?: bigint): Promise<TransactionReceipt> {
    let tx: TransactionResponse;
    try {
      tx = (await this.contract.getFunction(method)(...args, ...(value === undefined ? [] : [{ value }]))) as TransactionResponse;
    } catch (err) {
      throw decodeRevert(this.contractName, method, err);
    }
    let receipt: TransactionReceipt | null;
    try {
      receipt = await tx.wait();
    } catch (err) {
      throw decodeRevert(this.contractName, method, err);
    }
    if (receipt === null || receipt.status !== 1) throw new TransactionFailedError(method, tx.hash);
    return receipt;
  }

  protected async read<T>(method: string, args: unknown[] = []): Promise<T> {
    try {
      return (await this.contract.getFunction(method)(...args)) as T;
    } catch (err) {
      throw decodeRevert(this.contractName, method, err);
    }
  }

  /** Decoded events named `name` that this contract emitted in `receipt`. */
  events(receipt: TransactionReceipt, name: string): { args: Record<string, unknown> & unknown[] }[] {
    const out: { args: Record<string, unknown> & unknown[] }[] = [];
    for (const log of receipt.logs as readonly Log[]) {
      if (log.address.toLowerCase() !== this.address.toLowerCase()) continue;
      const parsed = this.contract.interface.parseLog(log);
      if (parsed?.name === name) out.push({ args: parsed.args as unknown as Record<string, unknown> & unknown[] });
    }
    return out;
  }

  /** Names of all events this contract emitted in `receipt`, in log order. */
  eventNames(receipt: TransactionReceipt): string[] {
    return (receipt.logs as readonly Log[])
      .filter((l) => l.address.toLowerCase() === this.address.toLowerCase())
      .map((l) => this.contract.interface.parseLog(l)?.name ?? '?');
  }
}

const capacityTuple = (c: Capacity): unknown[] => [c.flopsPerSecond, c.memoryBytes, c.maxModelBytes, c.price, c.priceUnit];

export class SupplierRegistryClient extends Binding {
  constructor(address: string, runner: ContractRunner) {
    super(ContractName.SupplierRegistry, address, runner);
  }
  connect(runner: ContractRunner): SupplierRegistryClient {
    return new SupplierRegistryClient(this.address, runner);
  }

  bindMarket(market: string): Promise<TransactionReceipt> { return this.send('bindMarket', [market]); }
  register(capacity: Capacity, stake: bigint): Promise<TransactionReceipt> { return this.send('register', [capacityTuple(capacity)], stake); }
  addStake(amount: bigint): Promise<TransactionReceipt> { return this.send('addStake', [], amount); }
  updateCapacity(capacity: Capacity): Promise<TransactionReceipt> { return this.send('updateCapacity', [capacityTuple(capacity)]); }
  addWorker(worker: string): Promise<TransactionReceipt> { return this.send('addWorker', [worker]); }
  removeWorker(worker: string): Promise<TransactionReceipt> { return this.send('removeWorker', [worker]); }
  requestUnstake(amount: bigint): Promise<TransactionReceipt> { return this.send('requestUnstake', [amount]); }
  withdrawUnstaked(): Promise<TransactionReceipt> { return this.send('withdrawUnstaked', []); }

  minStake(): Promise<bigint> { return this.read('minStake'); }
  unstakeDelay(): Promise<bigint> { return this.read('unstakeDelay'); }
  market(): Promise<string> { return this.read('market'); }
  workerOf(worker: string): Promise<string> { return this.read('workerOf', [worker]); }
  unlockedStake(operator: string): Promise<bigint> { return this.read('unlockedStake', [operator]); }
  isRegistered(operator: string): Promise<boolean> { return this.read('isRegistered', [operator]); }
  async getSupplier(operator: string): Promise<SupplierInfo> {
    const s = await this.read<{ registered: boolean; stake: bigint; locked: bigint; pendingUnstake: bigint; unstakeReadyAt: bigint; workerCount: bigint; capacity: Omit<Capacity, 'priceUnit'> & { priceUnit: bigint } }>('getSupplier', [operator]);
    const c = s.capacity;
    return {
      registered: s.registered, stake: s.stake, locked: s.locked, pendingUnstake: s.pendingUnstake, unstakeReadyAt: s.unstakeReadyAt, workerCount: Number(s.workerCount),
      capacity: { flopsPerSecond: c.flopsPerSecond, memoryBytes: c.memoryBytes, maxModelBytes: c.maxModelBytes, price: c.price, priceUnit: Number(c.priceUnit) as PriceUnit },
    };
  }
}

export class JobMarketClient extends Binding {
  constructor(address: string, runner: ContractRunner) {
    super(ContractName.JobMarket, address, runner);
  }
  connect(runner: ContractRunner): JobMarketClient {
    return new JobMarketClient(this.address, runner);
  }

  /** Posts a job escrowing `reward` wei; returns the new job id from JobPosted. */
  async postJob(spec: JobSpec, reward: bigint): Promise<{ jobId: bigint; receipt: TransactionReceipt }> {
    const receipt = await this.send('postJob', [[spec.modelDigest, spec.modelURI, spec.dataDigest, spec.dataURI, spec.steps, spec.deadline, spec.challengeWindow]], reward);
    const ev = this.events(receipt, 'JobPosted')[0];
    if (ev === undefined) throw new MissingEventError('JobPosted', receipt.hash);
    return { jobId: ev.args[0] as bigint, receipt };
  }
  accept(jobId: bigint): Promise<TransactionReceipt> { return this.send('accept', [jobId]); }
  commitTraceRoot(jobId: bigint, checkpointIndex: bigint, root: string): Promise<TransactionReceipt> { return this.send('commitTraceRoot', [jobId, checkpointIndex, root]); }
  submitResult(jobId: bigint, finalTraceRoot: string, resultDigest: string): Promise<TransactionReceipt> { return this.send('submitResult', [jobId, finalTraceRoot, resultDigest]); }
  finalize(jobId: bigint): Promise<TransactionReceipt> { return this.send('finalize', [jobId]); }
  challenge(jobId: bigint, bond: bigint): Promise<TransactionReceipt> { return this.send('challenge', [jobId], bond); }
  resolveDispute(jobId: bigint, supplierAtFault: boolean): Promise<TransactionReceipt> { return this.send('resolveDispute', [jobId, supplierAtFault]); }
  claimRefund(jobId: bigint): Promise<TransactionReceipt> { return this.send('claimRefund', [jobId]); }
  /** Hands the job back; `reason` and `detail` (at most 256 bytes) land in JobReleased. */
  release(jobId: bigint, reason: ReleaseReason = ReleaseReason.Unspecified, detail = ''): Promise<TransactionReceipt> { return this.send('release', [jobId, reason, detail]); }
  claim(): Promise<TransactionReceipt> { return this.send('claim', []); }

  credits(account: string): Promise<bigint> { return this.read('credits', [account]); }
  traceRoot(jobId: bigint, index: bigint): Promise<string> { return this.read('traceRoots', [jobId, index]); }
  challengerBond(): Promise<bigint> { return this.read('challengerBond'); }
  jobBondBps(): Promise<bigint> { return this.read('jobBondBps'); }
  arbiter(): Promise<string> { return this.read('arbiter'); }
  async totals(): Promise<{ escrow: bigint; challengeBonds: bigint; credits: bigint }> {
    const [escrow, challengeBonds, credits] = await Promise.all([this.read<bigint>('totalEscrow'), this.read<bigint>('totalChallengeBonds'), this.read<bigint>('totalCredits')]);
    return { escrow, challengeBonds, credits };
  }
  async getJob(jobId: bigint): Promise<Job> {
    const j = await this.read<Record<string, unknown>>('getJob', [jobId]);
    return {
      submitter: j.submitter as string, deadline: j.deadline as bigint, challengeWindow: j.challengeWindow as bigint,
      state: Number(j.state) as JobState, supplier: j.supplier as string, challengeEndsAt: j.challengeEndsAt as bigint,
      checkpointCount: Number(j.checkpointCount), challenger: j.challenger as string, reward: j.reward as bigint, bond: j.bond as bigint,
      steps: j.steps as bigint, modelDigest: j.modelDigest as string, dataDigest: j.dataDigest as string,
      finalTraceRoot: j.finalTraceRoot as string, resultDigest: j.resultDigest as string,
    };
  }
}
