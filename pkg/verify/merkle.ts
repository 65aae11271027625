import { DIGEST_BYTES, digestEquals, sha256, type Digest } from './digest.js';
import { MerkleIndexError } from './errors.js';

/**
 * Binary Merkle trees as in RFC 6962 / RFC 9162 (Certificate Transparency):
 *
 *   leafHash(d)    = SHA-256(0x00 || d)
 *   nodeHash(l, r) = SHA-256(0x01 || l || r)
 *   root([])       = SHA-256("")
 *
 * Built level by level: pair neighbours left to right; an odd node at the end of a level is promoted
 * unchanged to the next level (never duplicated, so no two leaf lists share a root the way Bitcoin's
 * duplication allows). That tree equals RFC 6962's MTH, which splits n leaves at the largest power of
 * two below n, so proofs are RFC 9162 inclusion proofs and any CT verifier (or a Solidity port of
 * verifyInclusion) checks them. The 0x00/0x01 prefixes keep a leaf from passing for an inner node.
 *
 * Used twice: stage record hashes -> step root, and step roots -> trace root (TraceAccumulator).
 */

const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

export function leafHash(data: Uint8Array): Digest {
  return sha256(LEAF, data);
}

export function nodeHash(left: Digest, right: Digest): Digest {
  return sha256(NODE, left, right);
}

export const EMPTY_ROOT: Digest = sha256();

/** Root over already-hashed leaves (leafHash applied). */
function rootOfHashes(hashes: readonly Digest[]): Digest {
  if (hashes.length === 0) return EMPTY_ROOT;
  let level = [...hashes];
  while (level.length > 1) {
    const next: Digest[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(nodeHash(level[i]!, level[i + 1]!));
    if (level.length % 2 === 1) next.push(level[level.length - 1]!);
    level = next;
  }
  return level[0]!;
}

/** Merkle root over leaf data (each leaf hashed with leafHash first). */
export function merkleRoot(leaves: readonly Uint8Array[]): Digest {
  return rootOfHashes(leaves.map(leafHash));
}

/** Largest power of two strictly below n (n >= 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** RFC 9162 PATH(m, D[n]) over leaf hashes: sibling hashes from the leaf up. */
function pathOfHashes(index: number, hashes: readonly Digest[]): Digest[] {
  if (hashes.length <= 1) return [];
  const k = split(hashes.length);
  return index < k
    ? [...pathOfHashes(index, hashes.slice(0, k)), rootOfHashes(hashes.slice(k))]
    : [...pathOfHashes(index - k, hashes.slice(k)), rootOfHashes(hashes.slice(0, k))];
}

/** Inclusion proof of leaf `index` in the tree over `leaves` (leaf data): sibling hashes, bottom-up. */
export function merkleProof(leaves: readonly Uint8Array[], index: number): Digest[] {
  if (!Number.isInteger(index) || index < 0 || index >= leaves.length) throw new MerkleIndexError(index, leaves.length);
  return pathOfHashes(index, leaves.map(leafHash));
}

/**
 * True when `leaf` (leaf data, e.g. a record hash or step root: not its leafHash) sits at `index`
 * in a tree of `size` leaves with this root. RFC 9162 section 2.1.3.2, step by step, so it ports
 * line for line to Solidity. Never throws: a malformed proof is just false.
 *
 * The proof does not bind `size` by itself (leaf 0 of 3 and of 4 have same-shaped paths): a root
 * means nothing without its size, so commit and read them as a pair (as CT's signed tree head does).
 */
export function verifyInclusion(root: Digest, leaf: Uint8Array, index: number, size: number, proof: readonly Digest[]): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  // Halve by division: JS shifts truncate to 32 bits, sizes need not.
  let fn = index;
  let sn = size - 1;
  let r = leafHash(leaf);
  for (const p of proof) {
    if (p.length !== DIGEST_BYTES || sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && digestEquals(r, root);
}

/**
 * Append-only Merkle accumulator over step roots: the trace root. root() is O(log n) from the
 * frontier (roots of the perfect subtrees, largest first, like the bits of a binary counter);
 * leaf hashes are kept for proofs. Step i (0-based append order) is leaf i.
 */
export class TraceAccumulator {
  private readonly hashes: Digest[] = [];
  /** Perfect subtree roots with their heights, left to right, heights strictly decreasing. */
  private readonly frontier: { height: number; hash: Digest }[] = [];

  /** An accumulator already holding `leaves` (e.g. step roots read back from a checkpoint). */
  static from(leaves: readonly Uint8Array[]): TraceAccumulator {
    const acc = new TraceAccumulator();
    for (const l of leaves) acc.append(l);
    return acc;
  }

  get size(): number {
    return this.hashes.length;
  }

  /** Appends one leaf (a step root); returns its index. */
  append(leaf: Uint8Array): number {
    let node = { height: 0, hash: leafHash(leaf) };
    this.hashes.push(node.hash);
    for (let top = this.frontier.at(-1); top && top.height === node.height; top = this.frontier.at(-1)) {
      this.frontier.pop();
      node = { height: node.height + 1, hash: nodeHash(top.hash, node.hash) };
    }
    this.frontier.push(node);
    return this.hashes.length - 1;
  }

  /** Root over every leaf appended so far (EMPTY_ROOT before the first). */
  root(): Digest {
    if (this.frontier.length === 0) return EMPTY_ROOT;
    let r = this.frontier[this.frontier.length - 1]!.hash;
    for (let i = this.frontier.length - 2; i >= 0; i--) r = nodeHash(this.frontier[i]!.hash, r);
    return r;
  }

  /** Inclusion proof of leaf `index` against root() at the current size. */
  proof(index: number): Digest[] {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) throw new MerkleIndexError(index, this.size);
    return pathOfHashes(index, this.hashes);
  }
}
