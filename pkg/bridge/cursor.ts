/**
 * Event-cursor bookkeeping (pure) and its file adapter.
 *
 * Delivery from the chain is at-least-once: a crash between handling an event and advancing the
 * cursor replays it. Handling is made exactly-once by a processed set keyed by job id, persisted
 * in the same file as the cursor: an event is handled, then marked, then the file is written
 * (atomically: temp file + rename). Handlers are also idempotent on their own (they re-read the
 * job's on-chain state), which covers a crash between a transaction and the write.
 * The file also holds the jobs in flight, so a restarted bridge finishes them.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { CursorFileError } from './errors.js';

/** Phase of an accepted job as the bridge tracks it. */
export const ActivePhase = { Accepted: 'accepted', Submitted: 'submitted' } as const;
export type ActivePhase = (typeof ActivePhase)[keyof typeof ActivePhase];

/** What the bridge keeps of an accepted job (URIs appear only in the JobPosted log). JSON-safe. */
export interface ActiveJob {
  jobId: string;
  phase: ActivePhase;
  modelURI: string;
  dataURI: string;
  modelDigest: string;
  dataDigest: string;
  steps: string;
  reward: string;
  /** Set when submitted: unix seconds. */
  challengeEndsAt?: string;
  /** Parameter bytes, measured at accept (counts toward the capacity the bridge holds). Absent in older files. */
  modelBytes?: string;
}

export interface BridgeState {
  version: 1;
  /** First block not yet fully processed. */
  nextBlock: number;
  /** Job ids handled in blocks >= nextBlock (jobId -> block). */
  processed: Record<string, number>;
  active: Record<string, ActiveJob>;
  /** Lifetime totals, wei, as decimal strings. */
  earned: string;
}

export function initialState(fromBlock: number): BridgeState {
  return { version: 1, nextBlock: fromBlock, processed: {}, active: {}, earned: '0' };
}

export interface LoggedEvent {
  jobId: bigint;
  blockNumber: number;
}

/** Events not yet handled, in order. */
export function unhandled<E extends LoggedEvent>(state: BridgeState, events: readonly E[]): E[] {
  return events.filter((e) => e.blockNumber >= state.nextBlock && state.processed[e.jobId.toString()] === undefined);
}

export function markHandled(state: BridgeState, e: LoggedEvent): BridgeState {
  return { ...state, processed: { ...state.processed, [e.jobId.toString()]: e.blockNumber } };
}

/** Every block up to and including `toBlock` is processed: move the cursor, drop ids it now covers. */
export function advance(state: BridgeState, toBlock: number): BridgeState {
  const nextBlock = Math.max(state.nextBlock, toBlock + 1);
  const processed: Record<string, number> = {};
  for (const [id, b] of Object.entries(state.processed)) if (b >= nextBlock) processed[id] = b;
  return { ...state, nextBlock, processed };
}

export interface StateStore {
  load(): Promise<BridgeState | undefined>;
  save(state: BridgeState): Promise<void>;
}

/** JSON file, written atomically (write temp, rename over). */
export class FileStateStore implements StateStore {
  constructor(readonly path: string) {}

  async load(): Promise<BridgeState | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CursorFileError(this.path, 'unreadable', { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new CursorFileError(this.path, 'not JSON', { cause: err });
    }
    const s = parsed as Partial<BridgeState>;
    if (s === null || typeof s !== 'object' || s.version !== 1 || typeof s.nextBlock !== 'number' || typeof s.processed !== 'object' || typeof s.active !== 'object' || typeof s.earned !== 'string') {
      throw new CursorFileError(this.path, 'not a version-1 bridge state');
    }
    return s as BridgeState;
  }

  async save(state: BridgeState): Promise<void> {
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(state, null, 2) + '\n');
    await rename(tmp, this.path);
  }
}
