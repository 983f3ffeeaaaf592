/** The oracles in one import: `import { withKernelMount, walkDirectory, diffManifests } from './oracle'`. */
export * from './manifest';
export * from './kernel';
export * from './unsquashfs';
export * from './tools';
export * from './fixtures';
