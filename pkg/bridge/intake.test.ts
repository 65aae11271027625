import { JobSpecError } from './errors.js';
import { parseJobSpec } from './intake.js';

const D = `0x${'ab'.repeat(32)}`;
const ok = { modelDigest: D, modelURI: 'https://models.example.com/m.onnx', dataDigest: D, dataURI: '/data/corpus.txt', steps: 10n, deadline: 2_000_000_000n, challengeWindow: 600n };

test('a well-formed spec parses into the typed intake (digests lower-cased)', () => {
  const i = parseJobSpec(7n, 5n, { ...ok, modelDigest: D.toUpperCase().replace('0X', '0x') });
  expect(i).toEqual({ job: { jobId: 7n, modelURI: ok.modelURI, dataURI: ok.dataURI, modelDigest: D, dataDigest: D, steps: 10n }, reward: 5n, deadline: ok.deadline, challengeWindow: 600n });
  for (const uri of ['file:///tmp/m.onnx', 'http://10.0.0.1:8080/m', 'data:application/octet-stream;base64,AAEC', 'data:,hello']) {
    expect(parseJobSpec(1n, 0n, { ...ok, modelURI: uri }).job.modelURI).toBe(uri);
  }
});

test.each<[string, unknown, string, RegExp]>([
  ['unsupported scheme', { ...ok, modelURI: 'ipfs://bafy/model.onnx' }, 'modelURI', /unsupported scheme ipfs:/],
  ['relative path', { ...ok, dataURI: 'data/corpus.txt' }, 'dataURI', /neither a URI nor an absolute path/],
  ['empty URI', { ...ok, modelURI: '' }, 'modelURI', /missing or not a string/],
  ['URI with whitespace', { ...ok, modelURI: 'https://x.example/a b' }, 'modelURI', /whitespace/],
  ['URI too long', { ...ok, dataURI: `https://x.example/${'a'.repeat(2100)}` }, 'dataURI', /at most 2048/],
  ['http without host', { ...ok, modelURI: 'http://' }, 'modelURI', /does not parse/],
  ['data URI without comma', { ...ok, modelURI: 'data:base64' }, 'modelURI', /comma/],
  ['file URI naming no file', { ...ok, modelURI: 'file:///' }, 'modelURI', /names no file/],
  ['short digest', { ...ok, modelDigest: '0x1234' }, 'modelDigest', /32-byte hex/],
  ['zero digest', { ...ok, dataDigest: `0x${'0'.repeat(64)}` }, 'dataDigest', /zero/],
  ['zero steps', { ...ok, steps: 0n }, 'steps', /zero/],
  ['steps not an integer', { ...ok, steps: 'ten' }, 'steps', /not an integer/],
  ['missing field', (({ dataURI: _d, ...rest }) => rest)(ok), 'dataURI', /missing/],
  ['unknown field', { ...ok, priority: 3 }, 'priority', /unknown field/],
  ['not an object', 'spec', 'spec', /not an object/],
])('%s: JobSpecError naming the field', (_name, raw, field, detail) => {
  let err: unknown;
  try {
    parseJobSpec(3n, 0n, raw);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(JobSpecError);
  expect(err).toMatchObject({ jobId: 3n, field, code: 'JOB_SPEC' });
  expect((err as Error).message).toMatch(detail);
  expect((err as Error).message).toContain(`spec.${field}`);
});
