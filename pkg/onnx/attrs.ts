import type { Attribute, Node, Tensor } from './ir.js';
import { ShapeInferenceError } from './errors.js';

/** Attribute constructors, for graph builders: `{ axis: attr.int(1), alpha: attr.float(1) }`. */
export const attr = {
  int: (value: number): Attribute => ({ type: 'int', value }),
  ints: (value: number[]): Attribute => ({ type: 'ints', value }),
  float: (value: number): Attribute => ({ type: 'float', value }),
  floats: (value: number[]): Attribute => ({ type: 'floats', value }),
  string: (value: string): Attribute => ({ type: 'string', value }),
  strings: (value: string[]): Attribute => ({ type: 'strings', value }),
  tensor: (value: Tensor): Attribute => ({ type: 'tensor', value }),
};

function wrong(node: Node, name: string, want: string): never {
  throw new ShapeInferenceError(`attribute "${name}" of ${node.opType} must be ${want}`, node.name);
}

export function getInt(node: Node, name: string, fallback: number): number;
export function getInt(node: Node, name: string): number | undefined;
export function getInt(node: Node, name: string, fallback?: number): number | undefined {
  const a = node.attrs[name];
  if (!a) return fallback;
  if (a.type !== 'int') wrong(node, name, 'an int');
  return a.value;
}

export function getFloat(node: Node, name: string, fallback: number): number;
export function getFloat(node: Node, name: string): number | undefined;
export function getFloat(node: Node, name: string, fallback?: number): number | undefined {
  const a = node.attrs[name];
  if (!a) return fallback;
  if (a.type !== 'float') wrong(node, name, 'a float');
  return a.value;
}

export function getInts(node: Node, name: string): number[] | undefined {
  const a = node.attrs[name];
  if (!a) return undefined;
  if (a.type !== 'ints') wrong(node, name, 'a list of ints');
  return a.value;
}

export function getFloats(node: Node, name: string): number[] | undefined {
  const a = node.attrs[name];
  if (!a) return undefined;
  if (a.type !== 'floats') wrong(node, name, 'a list of floats');
  return a.value;
}

export function getString(node: Node, name: string, fallback: string): string;
export function getString(node: Node, name: string): string | undefined;
export function getString(node: Node, name: string, fallback?: string): string | undefined {
  const a = node.attrs[name];
  if (!a) return fallback;
  if (a.type !== 'string') wrong(node, name, 'a string');
  return a.value;
}

export function getTensor(node: Node, name: string): Tensor | undefined {
  const a = node.attrs[name];
  if (!a) return undefined;
  if (a.type !== 'tensor') wrong(node, name, 'a tensor');
  return a.value;
}
