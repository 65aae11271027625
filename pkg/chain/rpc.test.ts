import { backoffDelayMs, classifyRpcFailure, failureOf, FailureKind, type RpcFailure } from './rpc.js';

const { Transient: T, Permanent: P } = FailureKind;

test.each<[string, RpcFailure, FailureKind]>([
  ['connection reset', { type: 'network', message: 'socket hang up' }, T],
  ['HTTP 502', { type: 'http', status: 502 }, T],
  ['HTTP 503', { type: 'http', status: 503 }, T],
  ['HTTP 429', { type: 'http', status: 429 }, T],
  ['HTTP 400', { type: 'http', status: 400 }, P],
  ['HTTP 401', { type: 'http', status: 401 }, P],
  ['-32603 internal', { type: 'rpc', code: -32603, message: 'internal error', revertData: false }, T],
  ['-32005 limit exceeded', { type: 'rpc', code: -32005, message: 'limit exceeded', revertData: false }, T],
  ['-32603 carrying revert data', { type: 'rpc', code: -32603, message: 'Error: VM Exception', revertData: true }, P],
  ['code 3 execution reverted', { type: 'rpc', code: 3, message: 'execution reverted', revertData: false }, P],
  ['-32602 invalid params', { type: 'rpc', code: -32602, message: 'invalid params', revertData: false }, P],
  ['-32601 method not found', { type: 'rpc', code: -32601, message: 'method not found', revertData: false }, P],
  ['-32000 header not found', { type: 'rpc', code: -32000, message: 'header not found', revertData: false }, T],
  ['-32000 insufficient funds', { type: 'rpc', code: -32000, message: 'insufficient funds for gas', revertData: false }, P],
])('%s is %s', (_name, f, kind) => {
  expect(classifyRpcFailure(f)).toBe(kind);
});

test('failureOf: an HTTP status from ethers SERVER_ERROR, anything else is "no answer"', () => {
  expect(failureOf({ code: 'SERVER_ERROR', response: { statusCode: 503 } })).toEqual({ type: 'http', status: 503 });
  expect(failureOf({ code: 'SERVER_ERROR', response: { statusCode: 0 }, message: 'reset' })).toEqual({ type: 'network', message: 'reset' });
  expect(failureOf(new Error('ECONNRESET'))).toEqual({ type: 'network', message: 'ECONNRESET' });
});

test('backoff: doubles per attempt, capped, jitter within [cap/2, cap)', () => {
  const policy = { baseDelayMs: 100, maxDelayMs: 1000 };
  expect([0, 1, 2, 3, 4, 10].map((a) => backoffDelayMs(a, policy, 0))).toEqual([50, 100, 200, 400, 500, 500]);
  expect([0, 1, 2, 3, 4].map((a) => backoffDelayMs(a, policy, 0.999999))).toEqual([100, 200, 400, 800, 1000].map((c) => expect.closeTo(c, 2)));
  expect(backoffDelayMs(2, policy, 0.5)).toBe(300);
  expect(backoffDelayMs(0, {}, 0)).toBe(50); // defaults: base 100 ms
});
