import type { KubeConfig } from '@kubernetes/client-node';
import { Watch } from '@kubernetes/client-node';

/**
 * List+watch one resource into a local cache keyed by namespace/name. The watch resumes from the
 * last resourceVersion seen (bookmarks included); a 410 Gone (the version is compacted away)
 * relists, and the relist reports deletions that happened while nobody watched.
 */

export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export type InformerEvent<T> = { type: 'added'; obj: T } | { type: 'modified'; obj: T; old: T } | { type: 'deleted'; obj: T };

export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}

export interface InformerOptions<T> {
  /** e.g. "/api/v1/pods" or "/apis/tessera.dev/v1alpha1/trainingjobs". */
  path: string;
  list: () => Promise<ListResult<T>>;
  /** @default undefined */
  labelSelector?: string;
  /** Delay before re-watching after an error, in ms. @default 1000 */
  retryMs?: number;
  /** Opens a watch (client-node's Watch.watch signature). @default new Watch(kubeConfig).watch */
  watch?: WatchFn;
}

export type WatchFn = (
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  onEvent: (type: string, obj: any, raw?: any) => void, // eslint-disable-line @typescript-eslint/no-explicit-any
  done: (err: unknown) => void,
) => Promise<AbortController>;

export const keyOf = (o: KubeObject): string => (o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : `${o.metadata?.name}`);

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: Array<(e: InformerEvent<T>) => void> = [];
  private abort: AbortController | undefined;
  private stopped = false;
  private rv = '';
  private synced = false;
  private syncWaiters: Array<() => void> = [];
  /** How many times the informer listed (1 + relists). */
  lists = 0;

  private readonly watchFn: WatchFn;

  constructor(kc: KubeConfig | undefined, private readonly opts: InformerOptions<T>) {
    if (opts.watch) this.watchFn = opts.watch;
    else if (kc) {
      const w = new Watch(kc);
      this.watchFn = (path, query, onEvent, done) => w.watch(path, query, onEvent, done);
    } else throw new TypeError('Informer needs a KubeConfig or a watch function');
  }

  on(handler: (e: InformerEvent<T>) => void): void {
    this.handlers.push(handler);
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  hasSynced(): boolean {
    return this.synced;
  }

  async waitForSync(): Promise<void> {
    if (this.synced) return;
    await new Promise<void>((r) => this.syncWaiters.push(r));
  }

  async start(): Promise<void> {
    await this.relist();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private emit(e: InformerEvent<T>): void {
    for (const h of this.handlers) h(e);
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    let res: ListResult<T>;
    try {
      res = await this.opts.list();
    } catch {
      this.retry(() => this.relist());
      return;
    }
    this.lists++;
    const seen = new Set<string>();
    for (const obj of res.items) {
      const k = keyOf(obj);
      seen.add(k);
      const old = this.cache.get(k);
      this.cache.set(k, obj);
      if (!old) this.emit({ type: 'added', obj });
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emit({ type: 'modified', obj, old });
    }
    for (const [k, obj] of [...this.cache]) {
      if (!seen.has(k)) {
        this.cache.delete(k);
        this.emit({ type: 'deleted', obj });
      }
    }
    this.rv = res.resourceVersion;
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    await this.watch();
  }

  private retry(fn: () => Promise<void>): void {
    if (this.stopped) return;
    const t = setTimeout(() => void fn(), this.opts.retryMs ?? 1000);
    t.unref?.();
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    let gone = false;
    let finished = false;
    const done = (err: unknown): void => {
      if (finished) return;
      finished = true;
      if (this.stopped) return;
      const status = (err as { statusCode?: number; code?: number } | null)?.statusCode;
      if (gone || status === 410) this.retry(() => this.relist());
      else if (err) this.retry(() => this.watch());
      else void this.watch();
    };
    try {
      this.abort = await this.watchFn(
        this.opts.path,
        { resourceVersion: this.rv, allowWatchBookmarks: true, labelSelector: this.opts.labelSelector },
        (type: string, obj: T & { code?: number }) => {
          if (type === 'ERROR') {
            if (obj.code === 410) gone = true;
            return;
          }
          const rv = obj.metadata?.resourceVersion;
          if (rv) this.rv = rv;
          if (type === 'BOOKMARK') return;
          const k = keyOf(obj);
          const old = this.cache.get(k);
          if (type === 'DELETED') {
            this.cache.delete(k);
            this.emit({ type: 'deleted', obj });
          } else {
            this.cache.set(k, obj);
            this.emit(old ? { type: 'modified', obj, old } : { type: 'added', obj });
          }
        },
        done,
      );
      if (this.stopped) this.abort.abort();
    } catch (err) {
      done(err);
    }
  }
}
