import { readFileSync } from 'node:fs';
import { ByteTokenizer, CharTokenizer, TokenOutOfRangeError, UnknownTokenError, VocabularyError } from './index.js';

const corpus = readFileSync(new URL('../../test/fixtures/corpus/kjv-genesis-exodus.txt', import.meta.url), 'utf8');

describe('tokenizers', () => {
  test('the shipped corpus is 200-500 KB of text', () => {
    expect(corpus.length).toBeGreaterThan(200_000);
    expect(corpus.length).toBeLessThan(500_000);
  });

  test.each([
    { name: 'byte, corpus', tok: new ByteTokenizer(), text: corpus },
    { name: 'byte, non-ASCII', tok: new ByteTokenizer(), text: 'héllo wörld — ∑ 🙂' },
    { name: 'char, corpus', tok: CharTokenizer.fromText(corpus), text: corpus },
    { name: 'char, non-BMP', tok: CharTokenizer.fromText('a🙂b'), text: 'b🙂a🙂' },
  ])('$name: decode(encode(text)) === text, ids within the vocabulary', ({ tok, text }) => {
    const ids = tok.encode(text);
    expect(tok.decode(ids)).toBe(text);
    expect(Math.max(...ids.subarray(0, 10_000))).toBeLessThan(tok.vocabSize);
  });

  test('char vocabulary is the sorted distinct characters and survives JSON', () => {
    const tok = CharTokenizer.fromText('banana!');
    expect(tok.chars).toEqual(['!', 'a', 'b', 'n']);
    const back = CharTokenizer.fromJSON(JSON.parse(JSON.stringify(tok)));
    expect(back.encode('nab')).toEqual(tok.encode('nab'));
    expect(back.vocabSize).toBe(4);
    expect(CharTokenizer.fromText(corpus).vocabSize).toBe(new Set(corpus).size);
  });

  test('decode accepts bigint ids (batches are int64)', () => {
    const tok = CharTokenizer.fromText('abc');
    expect(tok.decode(BigInt64Array.of(2n, 0n))).toBe('ca');
  });

  test.each([
    { name: 'unknown character', run: () => CharTokenizer.fromText('abc').encode('abz'), err: UnknownTokenError, msg: '"z" at position 2' },
    { name: 'char id out of range', run: () => CharTokenizer.fromText('abc').decode([0, 3]), err: TokenOutOfRangeError, msg: 'token 3 at position 1' },
    { name: 'byte id out of range', run: () => new ByteTokenizer().decode([256]), err: TokenOutOfRangeError, msg: 'token 256' },
    { name: 'duplicate vocabulary', run: () => new CharTokenizer(['a', 'a']), err: VocabularyError, msg: 'duplicate' },
    { name: 'multi-char entry', run: () => CharTokenizer.fromJSON({ kind: 'char', chars: ['ab'] }), err: VocabularyError, msg: '"ab"' },
  ])('$name throws', ({ run, err, msg }) => {
    expect(run).toThrow(err);
    expect(run).toThrow(msg);
  });
});
