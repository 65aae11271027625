// Shape inference for this op group is registered here (see op-registry.ts).
export {};
