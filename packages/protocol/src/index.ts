export * from './errors.ts';
export * from './limits.ts';
export * from './schema.ts';
export * from './messages.ts';
export * from './inflate.ts';
export * from './crc32.ts';
export * from './envelope.ts';
export * from './ids.ts';
