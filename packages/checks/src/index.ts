export * from './conditions.ts';
export * from './probes.ts';
export * from './guard.ts';
export * from './state.ts';
