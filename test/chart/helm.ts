import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/** Runs the real helm binary (extracted by test/tools/helm.sh) against charts/tessera. */

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const chartDir = `${root}charts/tessera`;

let helmPath: string | undefined;
export function helm(): string {
  helmPath ??= execFileSync('bash', [`${root}test/tools/helm.sh`], { encoding: 'utf8' }).trim();
  return helmPath;
}

export interface HelmResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function runHelm(args: string[]): HelmResult {
  const r = spawnSync(helm(), args, { cwd: root, encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: '/tmp/tessera-helm-cache', HELM_CONFIG_HOME: '/tmp/tessera-helm-config' } });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Manifest = Record<string, any>;

/** `helm template` with --set pairs; throws with helm's stderr when rendering fails. */
export function template(set: Record<string, string> = {}, extra: string[] = []): Manifest[] {
  const args = ['template', 'rel', chartDir, '--namespace', 'tessera-system', ...extra];
  for (const [k, v] of Object.entries(set)) args.push('--set', `${k}=${v}`);
  const r = runHelm(args);
  if (r.status !== 0) throw new Error(`helm template failed (${r.status}): ${r.stderr}`);
  return parseAllDocuments(r.stdout).flatMap((d) => {
    if (d.errors.length) throw new Error(`rendered YAML does not parse: ${d.errors[0]!.message}`);
    const v = d.toJS() as Manifest | null;
    return v === null ? [] : [v];
  });
}
