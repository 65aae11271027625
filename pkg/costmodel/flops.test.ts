import { attr, DataType, type Attribute, type ConcreteType, type Node } from '../onnx/index.js';
import { forwardFlops, isDifferentiableInput } from './flops.js';

const t = (...shape: number[]): ConcreteType => ({ dtype: DataType.FLOAT, shape });
const n = (opType: string, attrs: Record<string, Attribute> = {}): Node => ({ name: 'n', opType, domain: '', inputs: [], outputs: ['o'], attrs });

describe('forwardFlops', () => {
  test.each<[string, Node, (ConcreteType | undefined)[], ConcreteType[], number]>([
    ['MatMul with broadcast batch dims', n('MatMul'), [t(2, 3, 4, 5), t(5, 6)], [t(2, 3, 4, 6)], 2 * 2 * 3 * 4 * 6 * 5],
    ['MatMul vector x matrix', n('MatMul'), [t(5), t(5, 6)], [t(6)], 2 * 6 * 5],
    ['Gemm transA with C', n('Gemm', { transA: attr.int(1) }), [t(5, 4), t(5, 6), t(6)], [t(4, 6)], 2 * 4 * 6 * 5 + 24],
    ['Conv grouped with bias', n('Conv'), [t(2, 8, 10, 10), t(16, 4, 3, 3), t(16)], [t(2, 16, 8, 8)], 2 * 2 * 16 * 64 * 4 * 9 + 2 * 16 * 64],
    ['MaxPool 2x2', n('MaxPool', { kernel_shape: attr.ints([2, 2]) }), [t(1, 3, 8, 8)], [t(1, 3, 4, 4)], 48 * 4],
    ['Softmax', n('Softmax'), [t(4, 10)], [t(4, 10)], 5 * 40],
    ['LayerNormalization', n('LayerNormalization'), [t(4, 10), t(10), t(10)], [t(4, 10)], 8 * 40],
    ['SoftmaxCrossEntropyLoss', n('SoftmaxCrossEntropyLoss'), [t(4, 10), t(4)], [t()], 6 * 40],
    ['ReduceMean counts input elements', n('ReduceMean'), [t(4, 10)], [t(4, 1)], 40],
    ['Sum of 3', n('Sum'), [t(5), t(5), t(5)], [t(5)], 10],
    ['Add broadcast: per output element', n('Add'), [t(4, 10), t(10)], [t(4, 10)], 40],
    ['Gelu', n('Gelu'), [t(7)], [t(7)], 7],
    ['Reshape moves data only', n('Reshape'), [t(4, 10), t(2)], [t(40)], 0],
    ['Transpose moves data only', n('Transpose'), [t(4, 10)], [t(10, 4)], 0],
  ])('%s', (_name, node, ins, outs, expected) => {
    expect(forwardFlops(node, ins, outs)).toBe(expected);
  });
});

describe('isDifferentiableInput', () => {
  test.each([
    ['MatMul', 1, true],
    ['Gather', 0, true],
    ['Gather', 1, false],
    ['Where', 0, false],
    ['Where', 1, true],
    ['Reshape', 1, false],
    ['Less', 0, false],
    ['SoftmaxCrossEntropyLoss', 1, false],
  ] as const)('%s input %d: %s', (op, i, expected) => {
    expect(isDifferentiableInput(n(op), i)).toBe(expected);
  });
});
