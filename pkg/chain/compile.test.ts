import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Interface } from 'ethers';
import { artifactRelPath, compileSources, readSources, serializeArtifact, EVM_VERSION } from './compile.js';
import { chainSourceRoot, loadArtifact } from './artifacts.js';
import { ArtifactNotFoundError, CompileError } from './errors.js';

describe('compile (solc-js)', () => {
  const compiled = compileSources(readSources());

  test('committed artifacts are byte-identical to a fresh compile (regenerate with compile.ts)', () => {
    const names = compiled.map((c) => artifactRelPath(c)).sort();
    expect(names).toEqual(['JobMarket.json', 'SupplierRegistry.json', 'testing/ReentrantReceiver.json']);
    for (const c of compiled) {
      const onDisk = readFileSync(join(chainSourceRoot(), 'artifacts', artifactRelPath(c)), 'utf8');
      expect(onDisk).toBe(serializeArtifact(c.artifact));
    }
  });

  test('artifacts carry ABI, creation and runtime bytecode, and the compiler settings', () => {
    const market = loadArtifact('JobMarket');
    expect(market.compiler.evmVersion).toBe(EVM_VERSION);
    expect(market.bytecode).toMatch(/^0x[0-9a-f]{200,}$/);
    expect(market.deployedBytecode.length).toBeLessThan(market.bytecode.length);
    // EIP-170: runtime code must fit in 24576 bytes or deployment fails on a real chain.
    for (const name of ['JobMarket', 'SupplierRegistry']) expect((loadArtifact(name).deployedBytecode.length - 2) / 2).toBeLessThanOrEqual(24576);
    const iface = new Interface(market.abi as never);
    for (const fn of ['postJob', 'accept', 'commitTraceRoot', 'submitResult', 'finalize', 'challenge', 'resolveDispute', 'claimRefund', 'release', 'claim']) {
      expect(iface.getFunction(fn)).not.toBeNull();
    }
    expect(iface.getError('ReentrantCall')).not.toBeNull();
  });

  test('solc errors surface as CompileError with the diagnostics', () => {
    const broken = { 'contracts/Broken.sol': 'pragma solidity ^0.8.24; contract Broken { function f() public { undefinedThing(); } }' };
    expect(() => compileSources(broken)).toThrow(CompileError);
    try {
      compileSources(broken);
    } catch (err) {
      expect((err as CompileError).messages.join('\n')).toMatch(/undefinedThing/);
    }
  });

  test('a missing artifact is ArtifactNotFoundError', () => {
    expect(() => loadArtifact('NoSuchContract')).toThrow(ArtifactNotFoundError);
  });
});
