export { OrtSession, toOrt, fromOrt } from './ort-session.js';
export type { SessionOptions } from './ort-session.js';
export { measureMatMulFlops } from './throughput.js';
export type { MatMulProbe } from './throughput.js';
