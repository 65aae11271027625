// Jest runs tests in a separate realm, but onnxruntime-node's native binding returns typed arrays
// from the main realm, so `instanceof Float32Array` checks inside onnxruntime-common fail. Sharing
// the host's typed array constructors makes both sides agree.
const { TestEnvironment } = require('jest-environment-node');

class SharedTypedArrayEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of ['ArrayBuffer', 'SharedArrayBuffer', 'DataView', 'Uint8Array', 'Uint8ClampedArray', 'Int8Array', 'Uint16Array', 'Int16Array', 'Uint32Array', 'Int32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array']) {
      this.global[name] = globalThis[name];
    }
  }
}
module.exports = SharedTypedArrayEnvironment;
