/**
 * Compiles contracts/*.sol (and the test-only test-contracts/*.sol) with the solc npm package
 * (solc-js, in-process: no compiler download) and writes one artifact JSON per contract:
 * artifacts/<Name>.json for production contracts, artifacts/testing/<Name>.json for test-only ones.
 * Artifacts are committed so runtime needs no compiler; artifacts.test.ts recompiles and compares.
 *
 * Regenerate: npx tsc -p tsconfig.json && node dist/pkg/chain/compile.js
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import solc from 'solc';
import { CompileError } from './errors.js';
import { chainSourceRoot, type Artifact } from './artifacts.js';

/** shanghai: PUSH0 but no cancun opcodes, so the bytecode runs on Hardhat's EDR (default osaka) and any post-Shanghai chain. */
export const EVM_VERSION = 'shanghai';
export const OPTIMIZER_RUNS = 200;

/** Source folders, relative to pkg/chain, and whether they are test-only. */
const SOURCE_DIRS = [
  { dir: 'contracts', testOnly: false },
  { dir: 'test-contracts', testOnly: true },
] as const;

export interface CompiledContract {
  artifact: Artifact;
  testOnly: boolean;
}

interface SolcOutput {
  errors?: { severity: string; formattedMessage: string }[];
  contracts: Record<string, Record<string, { abi: unknown[]; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }>>;
}

/** Reads the .sol sources under `root` (pkg/chain) keyed by their path relative to it, sorted. */
export function readSources(root: string = chainSourceRoot()): Record<string, string> {
  const sources: Record<string, string> = {};
  for (const { dir } of SOURCE_DIRS) {
    for (const file of readdirSync(join(root, dir)).filter((f) => f.endsWith('.sol')).sort()) {
      sources[`${dir}/${file}`] = readFileSync(join(root, dir, file), 'utf8');
    }
  }
  return sources;
}

/** Pure compile: sources in, artifacts out (sorted by name). Throws CompileError on any solc error. */
export function compileSources(sources: Record<string, string>): CompiledContract[] {
  const input = {
    language: 'Solidity',
    sources: Object.fromEntries(Object.entries(sources).map(([k, content]) => [k, { content }])),
    settings: {
      optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
      evmVersion: EVM_VERSION,
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) throw new CompileError(errors.map((e) => e.formattedMessage));
  const version = solc.version();
  const out: CompiledContract[] = [];
  for (const [sourceName, contracts] of Object.entries(output.contracts)) {
    const testOnly = SOURCE_DIRS.some((d) => d.testOnly && sourceName.startsWith(`${d.dir}/`));
    for (const [contractName, c] of Object.entries(contracts)) {
      if (c.evm.bytecode.object === '') continue; // abstract contracts and interfaces
      out.push({
        testOnly,
        artifact: {
          contractName,
          sourceName,
          abi: c.abi,
          bytecode: `0x${c.evm.bytecode.object}`,
          deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
          compiler: { version, evmVersion: EVM_VERSION, optimizerRuns: OPTIMIZER_RUNS },
        },
      });
    }
  }
  return out.sort((a, b) => a.artifact.contractName.localeCompare(b.artifact.contractName));
}

/** The exact bytes written for an artifact (stable key order from construction, trailing newline). */
export function serializeArtifact(a: Artifact): string {
  return `${JSON.stringify(a, null, 2)}\n`;
}

export function artifactRelPath(c: CompiledContract): string {
  return c.testOnly ? `testing/${c.artifact.contractName}.json` : `${c.artifact.contractName}.json`;
}

/** Compiles pkg/chain and writes artifacts/ under it; returns the written paths. */
export function writeArtifacts(root: string = chainSourceRoot()): string[] {
  const compiled = compileSources(readSources(root));
  mkdirSync(join(root, 'artifacts', 'testing'), { recursive: true });
  return compiled.map((c) => {
    const path = join(root, 'artifacts', artifactRelPath(c));
    writeFileSync(path, serializeArtifact(c.artifact));
    return path;
  });
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const p of writeArtifacts()) console.log(`wrote ${p}`);
}
