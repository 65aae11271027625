/** `tessera bridge status`: the supplier as the chain sees it (no state file needed). */
import { JobState, type JobMarketClient, type SupplierInfo, type SupplierRegistryClient } from '../chain/index.js';

export interface BridgeStatus {
  supplier: string;
  info: SupplierInfo;
  /** Jobs accepted by this supplier and not yet settled (Accepted, Submitted or Disputed). */
  inFlight: { jobId: bigint; state: JobState }[];
  /** Sum of JobFinalized payouts to this supplier, wei. */
  earned: bigint;
  /** Credits not yet claimed, wei. */
  unclaimed: bigint;
}

export async function readBridgeStatus(registry: SupplierRegistryClient, market: JobMarketClient, supplier: string, fromBlock = 0): Promise<BridgeStatus> {
  const c = market.contract;
  const [info, unclaimed, accepted, finalized] = await Promise.all([
    registry.getSupplier(supplier),
    market.credits(supplier),
    c.queryFilter(c.filters.JobAccepted!(null, supplier), fromBlock),
    c.queryFilter(c.filters.JobFinalized!(null, supplier), fromBlock),
  ]);
  const inFlight: BridgeStatus['inFlight'] = [];
  for (const l of accepted) {
    const jobId = (l as unknown as { args: unknown[] }).args[0] as bigint;
    const { state } = await market.getJob(jobId);
    if (state === JobState.Accepted || state === JobState.Submitted || state === JobState.Disputed) inFlight.push({ jobId, state });
  }
  const earned = finalized.reduce((sum, l) => sum + ((l as unknown as { args: unknown[] }).args[2] as bigint), 0n);
  return { supplier, info, inFlight, earned, unclaimed };
}
