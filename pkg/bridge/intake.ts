/**
 * Intake (pure, STYLE 10): a JobPosted spec as decoded from the log, parsed once into a typed
 * JobIntake. Anything malformed (a missing or unknown field, a digest that is not bytes32, a URI
 * that does not parse or uses a scheme no fetcher serves, zero steps) is a JobSpecError naming
 * the field, and the bridge skips the job before any I/O. Fetching and digest checks are in
 * fetch.ts; capacity, price and deadline in evaluate.ts.
 */
import { JobSpecError } from './errors.js';
import type { RunnableJob } from './runner.js';

/** URI schemes fetch.ts serves; an absolute local path counts as `file`. */
export const InputScheme = { File: 'file', Http: 'http', Https: 'https', Data: 'data' } as const;
export type InputScheme = (typeof InputScheme)[keyof typeof InputScheme];

const SCHEMES = new Set<string>(Object.values(InputScheme));
const SPEC_FIELDS = ['modelDigest', 'modelURI', 'dataDigest', 'dataURI', 'steps', 'deadline', 'challengeWindow'] as const;
/** The CRD's own cap on URLs, so a job the bridge takes can also be written into a TrainingJob. */
export const MAX_URI_LENGTH = 2048;
/** data: URIs carry the bytes themselves (handed to Kubernetes in a ConfigMap, never as a URL). */
export const MAX_DATA_URI_LENGTH = 4 * 2 ** 20;
/** Steps travel as JS numbers in the runners. */
const MAX_STEPS = BigInt(Number.MAX_SAFE_INTEGER);

export interface JobIntake {
  job: RunnableJob;
  reward: bigint;
  /** Unix seconds. */
  deadline: bigint;
  challengeWindow: bigint;
}

/** The scheme of a job URI, or a JobSpecError naming `field`. */
export function inputScheme(jobId: bigint, field: string, uri: unknown): InputScheme {
  if (typeof uri !== 'string' || uri.length === 0) throw new JobSpecError(jobId, field, 'missing or not a string');
  const max = /^data:/i.test(uri) ? MAX_DATA_URI_LENGTH : MAX_URI_LENGTH;
  if (uri.length > max) throw new JobSpecError(jobId, field, `${uri.length} characters, at most ${max}`);
  if (/[\s\u0000-\u001f\u007f]/.test(uri)) throw new JobSpecError(jobId, field, 'contains whitespace or control characters');
  if (uri.startsWith('/')) return InputScheme.File;
  const m = /^([a-z][a-z0-9+.-]*):/i.exec(uri);
  if (m === null) throw new JobSpecError(jobId, field, `${uri} is neither a URI nor an absolute path`);
  const scheme = m[1]!.toLowerCase();
  if (!SCHEMES.has(scheme)) throw new JobSpecError(jobId, field, `unsupported scheme ${scheme}: (supported: ${[...SCHEMES].join(', ')}, or an absolute path)`);
  if (scheme === InputScheme.Data) {
    if (!/^data:[^,]*,/i.test(uri)) throw new JobSpecError(jobId, field, 'data: URI without a comma before its payload');
    return InputScheme.Data;
  }
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new JobSpecError(jobId, field, `${uri} does not parse as a URL`);
  }
  if ((scheme === 'http' || scheme === 'https') && url.hostname === '') throw new JobSpecError(jobId, field, `${uri} has no host`);
  if (scheme === 'file' && (url.pathname === '' || url.pathname === '/')) throw new JobSpecError(jobId, field, `${uri} names no file`);
  return scheme as InputScheme;
}

function digestField(jobId: bigint, field: string, v: unknown): string {
  if (typeof v !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(v)) throw new JobSpecError(jobId, field, 'not a 32-byte hex digest');
  if (/^0x0{64}$/.test(v)) throw new JobSpecError(jobId, field, 'is zero (no content committed)');
  return v.toLowerCase();
}

function uintField(jobId: bigint, field: string, v: unknown): bigint {
  if (typeof v !== 'bigint' && !(typeof v === 'number' && Number.isSafeInteger(v))) throw new JobSpecError(jobId, field, 'missing or not an integer');
  const n = BigInt(v);
  if (n < 0n) throw new JobSpecError(jobId, field, 'negative');
  return n;
}

/** Parses the spec record of a JobPosted log (field names as in JobMarket.JobSpec). */
export function parseJobSpec(jobId: bigint, reward: bigint, raw: unknown): JobIntake {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new JobSpecError(jobId, 'spec', 'not an object');
  const rec = raw as Record<string, unknown>;
  for (const k of Object.keys(rec)) {
    if (!(SPEC_FIELDS as readonly string[]).includes(k)) throw new JobSpecError(jobId, k, 'unknown field (a newer contract?)');
  }
  for (const k of SPEC_FIELDS) if (rec[k] === undefined) throw new JobSpecError(jobId, k, 'missing');
  inputScheme(jobId, 'modelURI', rec.modelURI);
  inputScheme(jobId, 'dataURI', rec.dataURI);
  const steps = uintField(jobId, 'steps', rec.steps);
  if (steps === 0n) throw new JobSpecError(jobId, 'steps', 'is zero');
  if (steps > MAX_STEPS) throw new JobSpecError(jobId, 'steps', `${steps} exceeds ${MAX_STEPS}`);
  const deadline = uintField(jobId, 'deadline', rec.deadline);
  if (deadline === 0n) throw new JobSpecError(jobId, 'deadline', 'is zero');
  return {
    job: {
      jobId, modelURI: rec.modelURI as string, dataURI: rec.dataURI as string,
      modelDigest: digestField(jobId, 'modelDigest', rec.modelDigest), dataDigest: digestField(jobId, 'dataDigest', rec.dataDigest), steps,
    },
    reward, deadline, challengeWindow: uintField(jobId, 'challengeWindow', rec.challengeWindow),
  };
}
