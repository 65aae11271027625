import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArtifactNotFoundError } from './errors.js';

/** What compile.ts writes per contract; enough to deploy with ethers and to bind. */
export interface Artifact {
  contractName: string;
  sourceName: string;
  abi: unknown[];
  bytecode: string;
  deployedBytecode: string;
  compiler: { version: string; evmVersion: string; optimizerRuns: number };
}

export const ContractName = {
  SupplierRegistry: 'SupplierRegistry',
  JobMarket: 'JobMarket',
} as const;
export type ContractName = (typeof ContractName)[keyof typeof ContractName];

/**
 * pkg/chain in the source tree: this file's folder when run from source; from compiled output
 * (dist/pkg/chain, or any out dir) the nearest ancestor holding pkg/chain, since tsc copies
 * neither .sol nor the artifact JSON.
 */
export function chainSourceRoot(): string {
  const here = fileURLToPath(new URL('./', import.meta.url));
  const has = (dir: string): boolean => existsSync(join(dir, 'contracts', 'JobMarket.sol'));
  if (has(here)) return here;
  for (let dir = dirname(here), i = 0; i < 8; i++, dir = dirname(dir)) {
    if (has(join(dir, 'pkg', 'chain'))) return join(dir, 'pkg', 'chain');
  }
  throw new ArtifactNotFoundError('pkg/chain (source root)');
}

const cache = new Map<string, Artifact>();

/** Loads a committed artifact; `testing/Name` for test-only contracts. */
export function loadArtifact(name: string): Artifact {
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  let artifact: Artifact;
  try {
    artifact = JSON.parse(readFileSync(join(chainSourceRoot(), 'artifacts', `${name}.json`), 'utf8')) as Artifact;
  } catch (cause) {
    throw new ArtifactNotFoundError(name, { cause });
  }
  cache.set(name, artifact);
  return artifact;
}
