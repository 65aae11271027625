import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { advance, FileStateStore, initialState, markHandled, unhandled } from './cursor.js';
import { CursorFileError } from './errors.js';

const ev = (jobId: bigint, blockNumber: number) => ({ jobId, blockNumber });

describe('cursor bookkeeping', () => {
  test('a replay after a crash before advance hands back only unhandled events', () => {
    let s = initialState(5);
    const batch = [ev(1n, 5), ev(2n, 5), ev(3n, 7)];
    expect(unhandled(s, batch)).toEqual(batch);
    s = markHandled(s, batch[0]!);
    s = markHandled(s, batch[1]!);
    // crash here: the same range is read again
    expect(unhandled(s, batch)).toEqual([ev(3n, 7)]);
    s = markHandled(s, batch[2]!);
    expect(unhandled(s, batch)).toEqual([]);
    s = advance(s, 7);
    expect(s.nextBlock).toBe(8);
    expect(s.processed).toEqual({}); // covered by the cursor now
    expect(unhandled(s, batch)).toEqual([]);
    expect(unhandled(s, [ev(4n, 8)])).toEqual([ev(4n, 8)]);
  });

  test('advance keeps ids handled in blocks past the cursor and never moves backwards', () => {
    let s = markHandled(markHandled(initialState(0), ev(1n, 3)), ev(2n, 9));
    s = advance(s, 5);
    expect(s).toMatchObject({ nextBlock: 6, processed: { '2': 9 } });
    expect(advance(s, 2).nextBlock).toBe(6);
  });
});

describe('FileStateStore', () => {
  test('round-trips, writes atomically (no temp left), missing file is undefined, garbage is CursorFileError', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bridge-cursor-'));
    const store = new FileStateStore(join(dir, 'state.json'));
    expect(await store.load()).toBeUndefined();
    const s = advance(markHandled(initialState(3), ev(9n, 12)), 10);
    await store.save(s);
    expect(await store.load()).toEqual(s);
    expect(await readdir(dir)).toEqual(['state.json']);
    expect(JSON.parse(await readFile(join(dir, 'state.json'), 'utf8'))).toMatchObject({ nextBlock: 11, processed: { '9': 12 } });
    await writeFile(join(dir, 'state.json'), '{"version":2}');
    await expect(store.load()).rejects.toBeInstanceOf(CursorFileError);
    await writeFile(join(dir, 'state.json'), 'not json');
    await expect(store.load()).rejects.toBeInstanceOf(CursorFileError);
  });
});
