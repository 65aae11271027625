import { createHash } from 'node:crypto';
import {
  RecordFieldError, RecordLengthError, RecordMagicError, RecordVersionError, TraceRecordError, TruncatedRecordError,
  decodeTraceRecord, encodeTraceRecord, recordHash, toHex, type TraceRecord,
} from './index.js';

/** A digest whose 32 bytes all equal k: easy to spot in a hex dump. */
const d = (k: number): Uint8Array => new Uint8Array(32).fill(k);
const hx = (k: number): string => k.toString(16).padStart(2, '0').repeat(32);

const lastStage: TraceRecord = {
  step: 0x0102030405,
  stage: 3,
  schedule: '1f1b',
  loss: 1.5,
  weightsBefore: d(0xa1),
  weightsAfter: d(0xa2),
  microBatches: [
    { inputs: d(0x10), outputs: d(0x11), gradsIn: d(0x12), paramGrads: d(0x13), gradsOut: d(0x14) },
    { inputs: d(0x20), outputs: d(0x21), gradsIn: d(0x22), paramGrads: d(0x23), gradsOut: d(0x24) },
  ],
};
// The layout of record.ts, written out field by field.
const lastStageHex = [
  '54545243', '0100', '0100', // magic "TTRC", version 1, flags: has loss
  '0504030201000000', '03000000', '02000000', // step, stage, m
  '000000000000f83f', // loss 1.5 as f64
  hx(0xa1), hx(0xa2),
  '0400', '31663162', // schedule "1f1b"
  hx(0x10), hx(0x11), hx(0x12), hx(0x13), hx(0x14),
  hx(0x20), hx(0x21), hx(0x22), hx(0x23), hx(0x24),
].join('');

const firstStage: TraceRecord = {
  step: 7, stage: 0, schedule: '', loss: null, weightsBefore: d(1), weightsAfter: d(2),
  microBatches: [{ inputs: d(3), outputs: d(4), gradsIn: d(5), paramGrads: d(6), gradsOut: d(7) }],
};
const firstStageHex = (flags = '0000', loss = '0000000000000000'): string => [
  '54545243', '0100', flags, '0700000000000000', '00000000', '01000000', loss,
  hx(1), hx(2), '0000', hx(3), hx(4), hx(5), hx(6), hx(7),
].join('');

describe('trace record codec', () => {
  test.each([
    { name: 'last stage, loss, two micro-batches', r: lastStage, hex: lastStageHex },
    { name: 'first stage, no loss, empty schedule name', r: firstStage, hex: firstStageHex() },
    { name: 'NaN loss (canonical quiet NaN)', r: { ...firstStage, loss: NaN }, hex: firstStageHex('0100', '000000000000f87f') },
    { name: 'negative zero loss keeps its sign', r: { ...firstStage, loss: -0 }, hex: firstStageHex('0100', '0000000000000080') },
  ])('$name: encodes byte by byte, decodes back, re-encodes identically', ({ r, hex }) => {
    const bytes = encodeTraceRecord(r);
    expect(toHex(bytes)).toBe(hex);
    const back = decodeTraceRecord(bytes);
    expect(back).toEqual(r);
    expect(Object.is(back.loss, r.loss)).toBe(true);
    expect(toHex(encodeTraceRecord(back))).toBe(hex);
    expect(toHex(recordHash(r))).toBe(createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex'));
  });

  test('decodes from a view at an offset into a larger buffer', () => {
    const bytes = encodeTraceRecord(lastStage);
    const big = new Uint8Array(bytes.length + 7);
    big.set(bytes, 3);
    expect(decodeTraceRecord(big.subarray(3, 3 + bytes.length))).toEqual(lastStage);
  });

  test('every strict prefix is a TruncatedRecordError', () => {
    const bytes = encodeTraceRecord(lastStage);
    for (let n = 0; n < bytes.length; n++) expect(() => decodeTraceRecord(bytes.subarray(0, n))).toThrow(TruncatedRecordError);
  });

  const patch = (r: TraceRecord, at: number, hex: string): Uint8Array => {
    const b = encodeTraceRecord(r);
    b.set(Buffer.from(hex, 'hex'), at);
    return b;
  };
  const plus = (b: Uint8Array, hex: string): Uint8Array => Uint8Array.from([...b, ...Buffer.from(hex, 'hex')]);
  test.each([
    { name: 'bad magic', bytes: patch(lastStage, 0, '54545244'), err: RecordMagicError },
    { name: 'version 2', bytes: patch(lastStage, 4, '0200'), err: RecordVersionError },
    { name: 'version 0', bytes: patch(lastStage, 4, '0000'), err: RecordVersionError },
    { name: 'unknown flag bit', bytes: patch(lastStage, 6, '0300'), err: RecordFieldError },
    { name: 'step beyond 2^53-1', bytes: patch(lastStage, 8, '0000000000002000'), err: RecordFieldError },
    { name: 'zero micro-batches', bytes: patch(lastStage, 20, '00000000'), err: RecordLengthError },
    { name: 'more micro-batches declared than present', bytes: patch(lastStage, 20, '03000000'), err: TruncatedRecordError },
    { name: 'fewer micro-batches declared than present', bytes: patch(lastStage, 20, '01000000'), err: RecordLengthError },
    { name: 'loss bytes without the loss flag', bytes: patch(firstStage, 24, '01'), err: RecordFieldError },
    { name: 'non-canonical NaN loss', bytes: patch(lastStage, 24, '010000000000f87f'), err: RecordFieldError },
    { name: 'schedule name longer than the record', bytes: patch(lastStage, 96, 'ffff'), err: TruncatedRecordError },
    { name: 'schedule name not UTF-8', bytes: patch(lastStage, 98, 'c328'), err: RecordFieldError },
    { name: 'a trailing byte', bytes: plus(encodeTraceRecord(lastStage), '00'), err: RecordLengthError },
  ])('decode rejects $name', ({ bytes, err }) => {
    let caught: unknown;
    try {
      decodeTraceRecord(bytes);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(err);
    expect(caught).toBeInstanceOf(TraceRecordError);
  });

  test('RecordVersionError carries the version it saw', () => {
    expect(() => decodeTraceRecord(patch(lastStage, 4, '0700'))).toThrow(expect.objectContaining({ version: 7, offset: 4 }));
  });

  test.each([
    { name: 'no micro-batches', r: { ...lastStage, microBatches: [] }, err: RecordLengthError },
    { name: 'a 31-byte digest', r: { ...lastStage, weightsAfter: new Uint8Array(31) }, err: RecordFieldError },
    { name: 'a 33-byte micro-batch digest', r: { ...lastStage, microBatches: [{ ...lastStage.microBatches[0]!, gradsOut: new Uint8Array(33) }] }, err: RecordFieldError },
    { name: 'negative step', r: { ...lastStage, step: -1 }, err: RecordFieldError },
    { name: 'fractional step', r: { ...lastStage, step: 1.5 }, err: RecordFieldError },
    { name: 'stage beyond u32', r: { ...lastStage, stage: 2 ** 32 }, err: RecordFieldError },
    { name: 'schedule name over 65535 bytes', r: { ...lastStage, schedule: 'x'.repeat(65536) }, err: RecordLengthError },
  ])('encode rejects $name', ({ r, err }) => {
    expect(() => encodeTraceRecord(r)).toThrow(err);
  });

  test('every field changes the record hash', () => {
    const base = toHex(recordHash(lastStage));
    const variants: TraceRecord[] = [
      { ...lastStage, step: lastStage.step + 1 },
      { ...lastStage, stage: 2 },
      { ...lastStage, schedule: 'gpipe' },
      { ...lastStage, loss: 1.5000000000000002 },
      { ...lastStage, loss: null },
      { ...lastStage, weightsBefore: d(0xa3) },
      { ...lastStage, weightsAfter: d(0xa3) },
      { ...lastStage, microBatches: [lastStage.microBatches[1]!, lastStage.microBatches[0]!] },
      { ...lastStage, microBatches: lastStage.microBatches.slice(0, 1) },
      ...(['inputs', 'outputs', 'gradsIn', 'paramGrads', 'gradsOut'] as const).map((f) => ({
        ...lastStage, microBatches: [lastStage.microBatches[0]!, { ...lastStage.microBatches[1]!, [f]: d(0xee) }],
      })),
    ];
    const hashes = variants.map((v) => toHex(recordHash(v)));
    expect(new Set([base, ...hashes]).size).toBe(variants.length + 1);
  });
});
