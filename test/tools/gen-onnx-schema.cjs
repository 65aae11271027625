const protobuf = require('protobufjs');
const root = protobuf.loadSync(require('path').join(__dirname, '../../pkg/onnx/onnx.proto'));
const json = JSON.stringify(root.toJSON(), null, 1);
const out = `// Generated from onnx.proto (ONNX 1.17, Apache-2.0) by test/gen-onnx-schema.cjs; do not edit.\n// Kept as a module so the codec needs no file I/O to load its schema.\nexport const onnxSchema = ${json} as const;\n`;
require('fs').writeFileSync(require('path').join(__dirname, '../../pkg/onnx/onnx-schema.ts'), out);
