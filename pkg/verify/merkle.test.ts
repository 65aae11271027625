import { createHash } from 'node:crypto';
import { MerkleIndexError, TraceAccumulator, merkleProof, merkleRoot, toHex, verifyInclusion } from './index.js';

// Hashes recomputed here with node:crypto from the RFC 6962 definitions, not through merkle.ts.
const H = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
const L = (d: Uint8Array): Uint8Array => H(Uint8Array.of(0), d);
const N = (l: Uint8Array, r: Uint8Array): Uint8Array => H(Uint8Array.of(1), l, r);
const leaves = (n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => H(Uint8Array.of(0xd0, i)));

describe('merkleRoot against hand-built trees', () => {
  const [d0, d1, d2, d3, d4, d5, d6] = leaves(7).map(L) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  const n01 = N(d0, d1);
  const n0123 = N(n01, N(d2, d3));
  test.each([
    { n: 0, root: H() },
    { n: 1, root: d0 },
    { n: 2, root: n01 },
    { n: 3, root: N(n01, d2) }, // d2 promoted
    { n: 4, root: n0123 },
    { n: 5, root: N(n0123, d4) }, // d4 promoted twice
    { n: 6, root: N(n0123, N(d4, d5)) },
    { n: 7, root: N(n0123, N(N(d4, d5), d6)) },
  ])('$n leaves', ({ n, root }) => {
    expect(toHex(merkleRoot(leaves(n)))).toBe(toHex(root));
    // The accumulator reaches the same root appending one leaf at a time.
    expect(toHex(TraceAccumulator.from(leaves(n)).root())).toBe(toHex(root));
  });

  test('a leaf holding two leaf hashes does not pass for the inner node over them (domain separation)', () => {
    const two = leaves(2);
    const forged = new Uint8Array([...L(two[0]!), ...L(two[1]!)]);
    expect(toHex(merkleRoot([forged]))).not.toBe(toHex(merkleRoot(two)));
  });

  test('the accumulator root after every append equals merkleRoot of the prefix (sizes 0..40)', () => {
    const all = leaves(40);
    const acc = new TraceAccumulator();
    expect(toHex(acc.root())).toBe(toHex(merkleRoot([])));
    all.forEach((leaf, i) => {
      expect(acc.append(leaf)).toBe(i);
      expect(acc.size).toBe(i + 1);
      expect(toHex(acc.root())).toBe(toHex(merkleRoot(all.slice(0, i + 1))));
    });
  });
});

describe('inclusion proofs', () => {
  const flip = (b: Uint8Array, k: number): Uint8Array => {
    const c = Uint8Array.from(b);
    c[k] = c[k]! ^ 0x01;
    return c;
  };

  test.each(Array.from({ length: 17 }, (_, i) => i + 1))('every index of a %i-leaf tree proves, and any flipped byte fails', (n) => {
    const ls = leaves(n);
    const root = merkleRoot(ls);
    const acc = TraceAccumulator.from(ls);
    for (let i = 0; i < n; i++) {
      const proof = merkleProof(ls, i);
      expect(proof.map(toHex)).toEqual(acc.proof(i).map(toHex));
      expect(verifyInclusion(root, ls[i]!, i, n, proof)).toBe(true);
      for (let k = 0; k < 32; k++) {
        expect(verifyInclusion(flip(root, k), ls[i]!, i, n, proof)).toBe(false);
        expect(verifyInclusion(root, flip(ls[i]!, k), i, n, proof)).toBe(false);
        proof.forEach((_, e) => expect(verifyInclusion(root, ls[i]!, i, n, proof.map((p, x) => (x === e ? flip(p, k) : p)))).toBe(false));
      }
      // Wrong position, a missing or an extra sibling, another leaf's data. (A wrong size can pass
      // where the audit path has the same shape, e.g. leaf 0 of 3 and of 4: RFC 9162 binds the size
      // through the signed (root, size) pair, not the proof, so roots are always committed with it.)
      if (n > 1) expect(verifyInclusion(root, ls[i]!, (i + 1) % n, n, proof)).toBe(false);
      expect(verifyInclusion(root, ls[i]!, i, n, proof.slice(1))).toBe(n === 1);
      expect(verifyInclusion(root, ls[i]!, i, n, [...proof, root])).toBe(false);
      if (n > 1) expect(verifyInclusion(root, ls[(i + 1) % n]!, i, n, proof)).toBe(false);
    }
    expect(verifyInclusion(root, ls[0]!, n, n, [])).toBe(false);
    expect(verifyInclusion(root, ls[0]!, -1, n, [])).toBe(false);
  });

  test('a proof taken at an earlier size still verifies against the root of that size', () => {
    const acc = new TraceAccumulator();
    const ls = leaves(9);
    const roots: { root: Uint8Array; proof: Uint8Array[] }[] = [];
    for (const l of ls) {
      acc.append(l);
      roots.push({ root: acc.root(), proof: acc.proof(0) });
    }
    roots.forEach(({ root, proof }, i) => expect(verifyInclusion(root, ls[0]!, 0, i + 1, proof)).toBe(true));
  });

  test.each([
    { name: 'past the end', n: 3, i: 3 },
    { name: 'negative', n: 3, i: -1 },
    { name: 'empty tree', n: 0, i: 0 },
    { name: 'fractional', n: 3, i: 0.5 },
  ])('proof index $name throws MerkleIndexError', ({ n, i }) => {
    expect(() => merkleProof(leaves(n), i)).toThrow(MerkleIndexError);
    expect(() => TraceAccumulator.from(leaves(n)).proof(i)).toThrow(MerkleIndexError);
  });
});
