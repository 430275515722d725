export * from './conditions.ts';
export * from './probes.ts';
