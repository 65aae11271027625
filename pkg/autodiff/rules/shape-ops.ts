// Gradient rules for this op group are registered here (see rule-registry.ts).
export {};
