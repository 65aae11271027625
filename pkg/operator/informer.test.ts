import { Informer, type InformerEvent, type ListResult, type WatchFn } from './informer.js';

interface Obj {
  metadata: { name: string; namespace: string; resourceVersion: string };
}
const obj = (name: string, rv: string): Obj => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });
const tick = () => new Promise((r) => setTimeout(r, 5));

/** A scripted apiserver: lists answer from `state`, watches are recorded and driven by hand. */
function fake(initial: ListResult<Obj>) {
  const state = { list: initial, lists: 0 };
  const watches: Array<{ query: Record<string, unknown>; onEvent: (t: string, o: unknown) => void; done: (e: unknown) => void }> = [];
  const watch: WatchFn = async (_path, query, onEvent, done) => {
    watches.push({ query, onEvent, done });
    return new AbortController();
  };
  const list = async () => {
    state.lists++;
    return state.list;
  };
  return { state, watches, watch, list };
}

describe('Informer', () => {
  it('lists, then watches from the list resourceVersion and keeps following the latest one', async () => {
    const f = fake({ items: [obj('a', '5')], resourceVersion: '7' });
    const inf = new Informer<Obj>(undefined, { path: '/x', list: f.list, watch: f.watch, retryMs: 0 });
    const seen: string[] = [];
    inf.on((e: InformerEvent<Obj>) => seen.push(`${e.type} ${e.obj.metadata.name}`));
    void inf.start();
    await inf.waitForSync();
    await tick();
    expect(f.watches[0]!.query.resourceVersion).toBe('7');
    f.watches[0]!.onEvent('ADDED', obj('b', '8'));
    f.watches[0]!.onEvent('MODIFIED', obj('a', '9'));
    f.watches[0]!.onEvent('BOOKMARK', { metadata: { resourceVersion: '12' } });
    f.watches[0]!.done(null); // the server closed the watch normally: resume, no relist
    await tick();
    expect(f.state.lists).toBe(1);
    expect(f.watches[1]!.query.resourceVersion).toBe('12');
    expect(seen).toEqual(['added a', 'added b', 'modified a']);
    expect(inf.get('ns/a')?.metadata.resourceVersion).toBe('9');
    inf.stop();
  });

  it('410 Gone relists, and the relist reports what was deleted meanwhile', async () => {
    const f = fake({ items: [obj('a', '5'), obj('b', '6')], resourceVersion: '7' });
    const inf = new Informer<Obj>(undefined, { path: '/x', list: f.list, watch: f.watch, retryMs: 0 });
    const seen: string[] = [];
    inf.on((e) => seen.push(`${e.type} ${e.obj.metadata.name}`));
    void inf.start();
    await inf.waitForSync();
    await tick();
    f.state.list = { items: [obj('a', '20'), obj('c', '21')], resourceVersion: '30' };
    f.watches[0]!.onEvent('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
    f.watches[0]!.done(null);
    await tick();
    expect(f.state.lists).toBe(2);
    expect(seen.slice(2).sort()).toEqual(['added c', 'deleted b', 'modified a']);
    expect(f.watches.at(-1)!.query.resourceVersion).toBe('30');
    expect(inf.list().map((o) => o.metadata.name).sort()).toEqual(['a', 'c']);
    inf.stop();
  });
});
