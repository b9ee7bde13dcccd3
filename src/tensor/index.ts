// Public surface of the tensor layer.
export * from './dtype';
export * from './engine';
export * from './pool';
export * from './shape';
export * from './tensor';
