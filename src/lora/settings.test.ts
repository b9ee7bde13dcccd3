import { describe, expect, it } from 'vitest';
import { parseLora2Overrides } from './adapter';

describe('parseLora2Overrides (--lora2)', () => {
  it('reads numbers, on/off settings as 0/1, and the optional numeric ones', () => {
    expect(parseLora2Overrides('lr=0.01,scale=2,rankPrior=0,lrB=0.04,alpha=8')).toEqual({
      lr: 0.01,
      scale: 2,
      rankPrior: false,
      lrB: 0.04,
      alpha: 8,
    });
    expect(parseLora2Overrides('')).toEqual({});
  });

  it('rejects unknown keys, non-numbers and on/off values other than 0/1', () => {
    expect(() => parseLora2Overrides('speed=2')).toThrow(/--lora2 speed=2/);
    expect(() => parseLora2Overrides('lrB=fast')).toThrow(/lrB=fast/);
    expect(() => parseLora2Overrides('rankPrior=yes')).toThrow(/rankPrior=yes/);
    expect(() => parseLora2Overrides('lr')).toThrow(/--lora2 lr/);
  });
});
