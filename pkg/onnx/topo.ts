import { GraphError } from './errors.js';
import type { Graph, Node } from './ir.js';

/**
 * Nodes in a topological order (stable: keeps file order where it is already valid).
 * Rejects cycles and inputs that nothing produces.
 */
export function topologicalOrder(graph: Graph): Node[] {
  const available = new Set<string>(['']);
  for (const v of graph.inputs) available.add(v.name);
  for (const k of graph.initializers.keys()) available.add(k);
  const producers = new Map<string, number>();
  graph.nodes.forEach((n, i) =>
    n.outputs.forEach((o) => {
      if (o === '') return;
      if (producers.has(o) || available.has(o)) throw new GraphError(`value "${o}" is produced more than once (node "${n.name}")`);
      producers.set(o, i);
    }),
  );
  for (const n of graph.nodes) {
    for (const x of n.inputs) {
      if (!available.has(x) && !producers.has(x)) throw new GraphError(`node "${n.name}" (${n.opType}) reads "${x}", which no input, initializer or node provides`);
    }
  }
  const pending = graph.nodes.map((n) => new Set(n.inputs.filter((x) => !available.has(x))));
  const consumers = new Map<string, number[]>();
  graph.nodes.forEach((n, i) => n.inputs.forEach((x) => { if (!available.has(x)) consumers.set(x, [...(consumers.get(x) ?? []), i]); }));
  const order: Node[] = [];
  const ready: number[] = [];
  pending.forEach((p, i) => { if (p.size === 0) ready.push(i); });
  // A min-heap would give strict file order; a sorted insert is enough for graph sizes we see.
  while (ready.length > 0) {
    ready.sort((a, b) => a - b);
    const i = ready.shift()!;
    const n = graph.nodes[i]!;
    order.push(n);
    for (const o of n.outputs) {
      for (const c of consumers.get(o) ?? []) {
        const p = pending[c]!;
        if (p.delete(o) && p.size === 0) ready.push(c);
      }
    }
  }
  if (order.length !== graph.nodes.length) {
    const stuck = graph.nodes.filter((n) => !order.includes(n)).map((n) => n.name);
    throw new GraphError(`graph has a cycle through node(s) ${stuck.slice(0, 5).join(', ')}`);
  }
  return order;
}
