export { buildMlp, MLP_ACTIVATIONS, MODEL_IR_VERSION, MODEL_OPSET } from './mlp.js';
export type { MlpActivation, MlpOptions } from './mlp.js';
export { buildGpt } from './gpt.js';
export type { GptOptions } from './gpt.js';
export { parameterCount } from './init.js';
export { ModelOptionsError } from './errors.js';
