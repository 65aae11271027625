import { registerGradRule } from '../rule-registry.js';

// y = Trilu(x, k): a fixed 0/1 mask times x, so dx = the same Trilu of dy (k reused as is, even if
// it is a runtime value). Emitted by torch.triu/torch.tril on activations.
registerGradRule('Trilu', (ctx) => {
  const k = ctx.node.inputs[1] ?? '';
  const dy = ctx.gradOutOrZeros(0);
  return [ctx.b.op('Trilu', k === '' ? [dy] : [dy, k], { ...ctx.node.attrs })];
});
