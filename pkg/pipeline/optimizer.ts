import type { ConcreteType, Model, Tensor } from '../onnx/index.js';
import { OrtSession } from '../runtime/index.js';
import type { StageOptimizer, StageOptimizerFactory } from './executor.js';

/**
 * The part of pkg/optim's OptimizerGraph a stage uses, declared structurally so pkg/pipeline does not
 * depend on pkg/optim: pass `(params) => buildOptimizerGraph(params, config)`.
 */
export interface OptimizerGraphLike {
  model: Model;
  initialState(): Record<string, Tensor>;
  feeds(x: { params: Record<string, Tensor>; grads: Record<string, Tensor>; state: Record<string, Tensor>; step: number; lr: number }): Record<string, Tensor>;
  read(out: Record<string, Tensor>): { params: Record<string, Tensor>; state: Record<string, Tensor> };
}

export interface GraphOptimizerOptions {
  /** ORT intra-op threads of each optimizer session. @default 1 */
  intraOpThreads?: number;
}

/**
 * Per stage, an optimizer graph over the parameters the stage owns, run in its own ORT session, with
 * the optimizer state kept beside it. A clipping norm inside the graph would be the stage's own, not
 * the model's: build stage graphs without clipping and use ExecutorOptions.gradClipNorm (global).
 */
export function graphOptimizer(build: (params: { name: string; type: ConcreteType }[]) => OptimizerGraphLike, opts: GraphOptimizerOptions = {}): StageOptimizerFactory {
  return async (_stage, params) => {
    const graph = build(params);
    const session = await OrtSession.create(graph.model, { intraOpThreads: opts.intraOpThreads ?? 1 });
    let state = graph.initialState();
    const opt: StageOptimizer = {
      async step(current, grads, step, lr) {
        const out = graph.read(await session.run(graph.feeds({ params: current, grads, state, step, lr })));
        state = out.state;
        return out.params;
      },
      release: () => session.release(),
    };
    return opt;
  };
}
