import { V1MicroTime, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import { statusCodeOf } from './kube-writer.js';

/**
 * Lease-based leader election (client-go's leaderelection, trimmed): a coordination.k8s.io Lease
 * names the holder; others take it over once they have seen the same record unchanged for a whole
 * lease duration (measured on their own clock, so clock skew between replicas does not matter).
 */

export interface LeaderElectionOptions {
  namespace: string;
  /** Lease name. @default "tessera-operator" */
  name?: string;
  /** This replica's identity (the pod name). */
  identity: string;
  /** How long a lease lasts without renewal. @default 15000 */
  leaseDurationMs?: number;
  /** The leader gives up when it could not renew for this long. @default 10000 */
  renewDeadlineMs?: number;
  /** Pause between tries (acquire and renew). @default 2000 */
  retryPeriodMs?: number;
  /** Clear holderIdentity on stop, so a successor need not wait out the lease. @default true */
  releaseOnStop?: boolean;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

export const LeaderState = { Follower: 'follower', Leader: 'leader', Stopped: 'stopped' } as const;
export type LeaderState = (typeof LeaderState)[keyof typeof LeaderState];

export class LeaderElector {
  private state: LeaderState = LeaderState.Follower;
  private observed: { holder?: string; renew?: string; at: number } = { at: 0 };
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private readonly o: Required<Omit<LeaderElectionOptions, 'onStartedLeading' | 'onStoppedLeading'>> & Pick<LeaderElectionOptions, 'onStartedLeading' | 'onStoppedLeading'>;

  constructor(private readonly api: CoordinationV1Api, opts: LeaderElectionOptions) {
    const defined = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as LeaderElectionOptions;
    this.o = { name: 'tessera-operator', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, releaseOnStop: true, ...defined };
  }

  get isLeader(): boolean {
    return this.state === LeaderState.Leader;
  }

  start(): void {
    const tick = async (): Promise<void> => {
      if (this.state === LeaderState.Stopped) return;
      await this.tryAcquireOrRenew();
      if ((this.state as LeaderState) !== LeaderState.Stopped) this.timer = setTimeout(() => (this.loop = tick()), this.o.retryPeriodMs);
    };
    this.loop = tick();
  }

  async stop(): Promise<void> {
    const was = this.state;
    this.state = LeaderState.Stopped;
    clearTimeout(this.timer);
    await this.loop;
    if (was === LeaderState.Leader) {
      this.o.onStoppedLeading();
      if (this.o.releaseOnStop) {
        try {
          const lease = await this.read();
          if (lease?.spec?.holderIdentity === this.o.identity) {
            const micro = (t?: Date) => (t ? new V1MicroTime(new Date(t).getTime()) : undefined);
            lease.spec = { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, acquireTime: micro(lease.spec.acquireTime), renewTime: micro(lease.spec.renewTime) };
            await this.api.replaceNamespacedLease({ name: this.o.name, namespace: this.o.namespace, body: lease });
          }
        } catch {
          // the lease expires on its own
        }
      }
    }
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
    } catch (err) {
      if (statusCodeOf(err) === 404) return undefined;
      throw err;
    }
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const now = Date.now();
    let ok = false;
    try {
      ok = await this.attempt(now);
    } catch {
      ok = false;
    }
    if (this.state === LeaderState.Stopped) return;
    if (ok) {
      this.lastRenew = now;
      if (this.state !== LeaderState.Leader) {
        this.state = LeaderState.Leader;
        this.o.onStartedLeading();
      }
    } else if (this.state === LeaderState.Leader && now - this.lastRenew > this.o.renewDeadlineMs) {
      this.state = LeaderState.Follower;
      this.o.onStoppedLeading();
    }
  }

  private async attempt(now: number): Promise<boolean> {
    const micro = new V1MicroTime(now);
    const lease = await this.read();
    const spec = { holderIdentity: this.o.identity, leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000), renewTime: micro };
    if (!lease) {
      await this.api.createNamespacedLease({ namespace: this.o.namespace, body: { metadata: { name: this.o.name, namespace: this.o.namespace }, spec: { ...spec, acquireTime: micro, leaseTransitions: 0 } } });
      return true;
    }
    const holder = lease.spec?.holderIdentity ?? '';
    const renew = lease.spec?.renewTime ? new Date(lease.spec.renewTime).toISOString() : undefined;
    if (holder !== this.observed.holder || renew !== this.observed.renew) this.observed = { holder, renew, at: now };
    const durMs = (lease.spec?.leaseDurationSeconds ?? Math.ceil(this.o.leaseDurationMs / 1000)) * 1000;
    const mine = holder === this.o.identity;
    if (!mine && holder !== '' && this.observed.at + durMs > now) return false;
    lease.spec = {
      ...lease.spec,
      ...spec,
      acquireTime: mine && lease.spec?.acquireTime ? new V1MicroTime(new Date(lease.spec.acquireTime).getTime()) : micro,
      leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + (mine ? 0 : 1),
    };
    await this.api.replaceNamespacedLease({ name: this.o.name, namespace: this.o.namespace, body: lease });
    return true;
  }
}
