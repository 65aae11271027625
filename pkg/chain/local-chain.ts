/**
 * Local chain harness: runs `hardhat node` (Hardhat 2, EDR) as a child process on a free loopback
 * port with funded, publicly known accounts, waits until it answers JSON-RPC, and stops it by PID.
 * Hardhat never compiles here (see hardhat.config.cjs); deploy the committed artifacts with deploy.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { HDNodeWallet, JsonRpcProvider, Network, Wallet, Mnemonic } from 'ethers';
import { chainSourceRoot } from './artifacts.js';
import { ChainStartError } from './errors.js';

/** Must match hardhat.config.cjs. */
export const LOCAL_MNEMONIC = 'test test test test test test test test test test test junk';
export const LOCAL_CHAIN_ID = 31337n;
export const LOCAL_ACCOUNT_COUNT = 12;

export interface LocalChainOptions {
  /** Loopback port; 0 picks a free one. @default 0 */
  port?: number;
  /** How long to wait for the first JSON-RPC answer. @default 30000 */
  startTimeoutMs?: number;
}

export interface LocalAccount {
  address: string;
  privateKey: string;
}

/** A JsonRpcProvider that never serves a cached answer (ethers caches identical calls for 250 ms,
 * which on an automining chain hands a Wallet a stale nonce) and polls receipts quickly. */
export function freshProvider(url: string, chainId: bigint = LOCAL_CHAIN_ID): JsonRpcProvider {
  const provider = new JsonRpcProvider(url, Network.from(chainId), { cacheTimeout: -1, staticNetwork: true });
  provider.pollingInterval = 50;
  return provider;
}

export class LocalChain {
  readonly provider: JsonRpcProvider;
  readonly accounts: readonly LocalAccount[];
  #exited: Promise<void>;

  constructor(readonly url: string, private readonly child: ChildProcess, exited: Promise<void>) {
    this.provider = freshProvider(url);
    this.accounts = deriveAccounts(LOCAL_ACCOUNT_COUNT);
    this.#exited = exited;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** A signer for funded account `i` (0 <= i < LOCAL_ACCOUNT_COUNT). */
  wallet(i: number): Wallet {
    const a = this.accounts[i];
    if (a === undefined) throw new RangeError(`account ${i} out of range`);
    return new Wallet(a.privateKey, this.provider);
  }

  rpc(method: string, params: unknown[] = []): Promise<unknown> {
    return this.provider.send(method, params);
  }

  async latestTimestamp(): Promise<bigint> {
    const block = await this.provider.getBlock('latest');
    return BigInt(block?.timestamp ?? 0);
  }

  /** Moves time forward and mines a block so the next view call sees it. */
  async increaseTime(seconds: number | bigint): Promise<void> {
    await this.rpc('evm_increaseTime', [Number(seconds)]);
    await this.rpc('evm_mine');
  }

  /** Mines a block whose timestamp is exactly `ts` (must be later than the latest block). */
  async mineAt(ts: bigint): Promise<void> {
    await this.rpc('evm_mine', [Number(ts)]);
  }

  async snapshot(): Promise<string> {
    return (await this.rpc('evm_snapshot')) as string;
  }

  /** Reverts to a snapshot (which consumes it: take a new one to revert again). */
  async revert(id: string): Promise<void> {
    const ok = await this.rpc('evm_revert', [id]);
    if (ok !== true) throw new Error(`evm_revert(${id}) failed`);
  }

  /** SIGTERM by PID, SIGKILL after 5 s; resolves once the process has exited. */
  async stop(): Promise<void> {
    this.provider.destroy();
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const pid = this.child.pid;
    if (pid !== undefined) process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => {
      if (pid !== undefined && this.child.exitCode === null) process.kill(pid, 'SIGKILL');
    }, 5000);
    await this.#exited;
    clearTimeout(timer);
  }
}

export function deriveAccounts(count: number): LocalAccount[] {
  const root = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(LOCAL_MNEMONIC), "m/44'/60'/0'/0");
  return Array.from({ length: count }, (_, i) => {
    const w = root.deriveChild(i);
    return { address: w.address, privateKey: w.privateKey };
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function answersRpc(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
    });
    const body = (await res.json()) as { result?: string };
    return body.result !== undefined && BigInt(body.result) === LOCAL_CHAIN_ID;
  } catch {
    return false;
  }
}

/** Starts `hardhat node` and resolves once it answers eth_chainId; tears it down if start fails. */
export async function startLocalChain(options: LocalChainOptions = {}): Promise<LocalChain> {
  const port = options.port ?? (await freePort());
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  const cli = createRequire(import.meta.url).resolve('hardhat/internal/cli/cli.js');
  const config = join(chainSourceRoot(), 'hardhat.config.cjs');
  const child = spawn(process.execPath, [cli, 'node', '--config', config, '--hostname', '127.0.0.1', '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HARDHAT_DISABLE_TELEMETRY_PROMPT: 'true', NODE_OPTIONS: '' },
  });
  // Keep only the tail of the output, for error messages; the node logs every call.
  let output = '';
  let listening = false;
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-8000);
    // Wait for our own child's banner too: an answer alone could come from another process on the port.
    if (!listening && output.includes('Started HTTP and WebSocket JSON-RPC server')) listening = true;
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const chain = new LocalChain(url, child, exited);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new ChainStartError(`hardhat node exited with ${child.exitCode ?? child.signalCode} before answering`, output);
    }
    if (listening && (await answersRpc(url))) return chain;
    await new Promise((r) => setTimeout(r, 100));
  }
  await chain.stop();
  throw new ChainStartError(`hardhat node did not answer on ${url} within ${timeoutMs} ms`, output);
}
