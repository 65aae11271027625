/** Deploys the committed artifacts with ethers (no compiler, no Hardhat) and wires them together. */
import { ContractFactory, type Signer } from 'ethers';
import { loadArtifact, ContractName } from './artifacts.js';
import { JobMarketClient, SupplierRegistryClient, decodeRevert } from './bindings.js';
import { TransactionFailedError } from './errors.js';

export interface MarketConfig {
  /** Minimum supplier stake, wei. */
  minStake: bigint;
  /** Seconds between requestUnstake and withdrawUnstaked. */
  unstakeDelay: bigint;
  /** Resolves disputes until the bisection game exists. */
  arbiter: string;
  /** Exact ETH a challenger escrows, wei. */
  challengerBond: bigint;
  /** Supplier bond per job, basis points of the reward (10000 = equal to the reward). */
  jobBondBps: bigint;
}

export interface Deployment {
  registry: SupplierRegistryClient;
  market: JobMarketClient;
}

/** Deploys `artifactName` (e.g. 'JobMarket', 'testing/ReentrantReceiver'); returns its address. */
export async function deployArtifact(artifactName: string, signer: Signer, args: unknown[] = []): Promise<string> {
  const a = loadArtifact(artifactName);
  const factory = new ContractFactory(a.abi as never, a.bytecode, signer);
  try {
    const contract = await factory.deploy(...args);
    const receipt = await contract.deploymentTransaction()?.wait();
    if (receipt === null || receipt === undefined || receipt.status !== 1) throw new TransactionFailedError(`deploy ${artifactName}`, receipt?.hash);
    return await contract.getAddress();
  } catch (err) {
    throw decodeRevert(a.contractName, 'constructor', err);
  }
}

/** Registry, then market, then binds the market into the registry (the deployer owns the registry). */
export async function deployMarket(signer: Signer, config: MarketConfig): Promise<Deployment> {
  const registryAddr = await deployArtifact(ContractName.SupplierRegistry, signer, [config.minStake, config.unstakeDelay]);
  const marketAddr = await deployArtifact(ContractName.JobMarket, signer, [registryAddr, config.arbiter, config.challengerBond, config.jobBondBps]);
  const registry = new SupplierRegistryClient(registryAddr, signer);
  await registry.bindMarket(marketAddr);
  return { registry, market: new JobMarketClient(marketAddr, signer) };
}
