import type { Model, Node } from '../onnx/index.js';
import type { Partition } from './split.js';

/** A stage's private name for a tied parameter it reads but does not own. */
export interface TiedAlias {
  alias: string;
  param: string;
  stage: number;
}

/**
 * A copy of the model in which every stage that reads a tied parameter without owning it reads it
 * through its own initializer (alias), so one training graph returns each such stage's part of the
 * gradient separately. A single-process run can then sum the parts as a pipeline of this partition
 * does (per stage over the micro-batches, then owner first and the readers in stage order, see
 * accumulate.ts) instead of adding them inside the graph per micro-batch (a different float order).
 * Aliases are listed in stage order; the model is untouched when no parameter is tied.
 */
export function aliasTiedReads(model: Model, part: Pick<Partition, 'stages' | 'owner' | 'nodes'>): { model: Model; aliases: TiedAlias[] } {
  const taken = new Set<string>([...model.graph.initializers.keys(), ...model.graph.nodes.flatMap((n) => n.outputs), ...model.graph.inputs.map((v) => v.name)]);
  const aliases: TiedAlias[] = [];
  const rename = new Map<Node, Map<string, string>>();
  for (const st of part.stages) {
    for (const param of st.params) {
      if (part.owner.get(param) === st.index) continue;
      let alias = `${param}@s${st.index}`;
      for (let k = 1; taken.has(alias); k++) alias = `${param}@s${st.index}.${k}`;
      taken.add(alias);
      aliases.push({ alias, param, stage: st.index });
      for (const name of st.nodes) {
        const node = part.nodes.get(name)!;
        if (!node.inputs.includes(param)) continue;
        let r = rename.get(node);
        if (!r) rename.set(node, (r = new Map()));
        r.set(param, alias);
      }
    }
  }
  if (aliases.length === 0) return { model, aliases };
  const initializers = new Map(model.graph.initializers);
  for (const a of aliases) initializers.set(a.alias, model.graph.initializers.get(a.param)!);
  const nodes = model.graph.nodes.map((n) => {
    const r = rename.get(n);
    return r ? { ...n, inputs: n.inputs.map((x) => r.get(x) ?? x) } : n;
  });
  return { model: { ...model, graph: { ...model.graph, nodes, initializers } }, aliases };
}
