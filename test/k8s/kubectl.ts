import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { sourceRoot, type Cluster } from './cluster.js';

/**
 * The real kubectl against a harness cluster (startCluster), for the setup the integration tests
 * and benches share. The CLI rather than client-node: its typed CRD model drops int-or-string fields.
 */

let kubectlPath: string | undefined;

/** Runs kubectl (the one test/tools/helm.sh extracts beside helm) in the source root, also from dist/; throws with its stderr on a non-zero exit. */
export function kubectl(cluster: Pick<Cluster, 'kubeconfigPath'>, args: readonly string[], input?: string): string {
  const root = sourceRoot();
  kubectlPath ??= join(dirname(execFileSync('bash', [join(root, 'test', 'tools', 'helm.sh')], { encoding: 'utf8' }).trim()), 'kubectl');
  const r = spawnSync(kubectlPath, [...args, '--kubeconfig', cluster.kubeconfigPath], { cwd: root, input, encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

export interface InstallTrainingJobsOptions {
  /** Also create the priority classes the operator's pods name (tessera-local 1000, tessera-network 100). @default true */
  priorityClasses?: boolean;
}

/** Applies the TrainingJob CRD, waits until it is Established, and creates namespace `ns`. */
export function installTrainingJobs(cluster: Pick<Cluster, 'kubeconfigPath'>, ns: string, opts: InstallTrainingJobsOptions = {}): void {
  kubectl(cluster, ['apply', '-f', 'manifests/crd/tessera.dev_trainingjobs.yaml']);
  kubectl(cluster, ['wait', '--for=condition=Established', 'crd/trainingjobs.tessera.dev', '--timeout=60s']);
  kubectl(cluster, ['create', 'namespace', ns]);
  if (opts.priorityClasses ?? true) {
    kubectl(cluster, ['create', 'priorityclass', 'tessera-local', '--value=1000']);
    kubectl(cluster, ['create', 'priorityclass', 'tessera-network', '--value=100']);
  }
}
