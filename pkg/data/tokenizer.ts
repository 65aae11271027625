import { TokenOutOfRangeError, UnknownTokenError, VocabularyError } from './errors.js';

export type TokenIds = Int32Array | Uint8Array;

export interface Tokenizer {
  readonly vocabSize: number;
  encode(text: string): TokenIds;
  decode(ids: ArrayLike<number | bigint>): string;
}

/** UTF-8 bytes as tokens: vocab 256, never fails to encode anything. */
export class ByteTokenizer implements Tokenizer {
  readonly vocabSize = 256;

  encode(text: string): Uint8Array {
    return new TextEncoder().encode(text);
  }

  /** Invalid UTF-8 (e.g. a sampled sequence cut mid-character) decodes to U+FFFD rather than throwing. */
  decode(ids: ArrayLike<number | bigint>): string {
    const bytes = new Uint8Array(ids.length);
    for (let i = 0; i < ids.length; i++) bytes[i] = checkId(ids[i]!, i, 256);
    return new TextDecoder().decode(bytes);
  }
}

/** Saved form of a CharTokenizer: its vocabulary in id order. */
export interface CharVocab {
  kind: 'char';
  chars: string[];
}

/** One token per Unicode code point seen in the corpus, ids in code-point order. */
export class CharTokenizer implements Tokenizer {
  private readonly ids: Map<string, number>;

  constructor(readonly chars: readonly string[]) {
    this.ids = new Map(chars.map((c, i) => [c, i]));
    if (this.ids.size !== chars.length) throw new VocabularyError('character vocabulary has duplicate entries');
    for (const c of chars) if ([...c].length !== 1) throw new VocabularyError(`vocabulary entry ${JSON.stringify(c)} is not a single character`);
  }

  /** Vocabulary = the distinct characters of `text`, sorted by code point so it is independent of text order. */
  static fromText(text: string): CharTokenizer {
    const set = new Set(text);
    return new CharTokenizer([...set].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!));
  }

  static fromJSON(v: CharVocab): CharTokenizer {
    if (v.kind !== 'char' || !Array.isArray(v.chars)) throw new VocabularyError('not a saved character vocabulary');
    return new CharTokenizer(v.chars);
  }

  toJSON(): CharVocab {
    return { kind: 'char', chars: [...this.chars] };
  }

  get vocabSize(): number {
    return this.chars.length;
  }

  encode(text: string): Int32Array {
    const chars = [...text];
    const out = new Int32Array(chars.length);
    chars.forEach((c, i) => {
      const id = this.ids.get(c);
      if (id === undefined) throw new UnknownTokenError(`character ${JSON.stringify(c)} at position ${i} is not in the vocabulary`);
      out[i] = id;
    });
    return out;
  }

  decode(ids: ArrayLike<number | bigint>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) s += this.chars[checkId(ids[i]!, i, this.chars.length)];
    return s;
  }
}

function checkId(id: number | bigint, pos: number, vocab: number): number {
  const n = Number(id);
  if (!Number.isInteger(n) || n < 0 || n >= vocab) throw new TokenOutOfRangeError(`token ${id} at position ${pos} is outside the vocabulary [0, ${vocab})`);
  return n;
}
