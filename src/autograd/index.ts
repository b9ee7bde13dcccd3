// Public surface of the autograd layer: the tape (backward, noGrad, checkpoint) and the ops.
export * from './ops';
export * from './tape';
