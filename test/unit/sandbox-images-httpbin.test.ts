import { describe, expect, it } from 'vitest';
import { pickStatus } from '../../src/sandbox/images/httpbin.js';

describe('httpbin /status specs', () => {
  it.each([
    ['200', 0.99, 200],
    ['503,200', 0.1, 503],
    ['503,200', 0.9, 200],
    ['503:1,200:3', 0.2, 503],
    ['503:1,200:3', 0.3, 200],
    ['503:0,200:1', 0.0, 200],
  ])('%s with random %d → %d', (spec, r, code) => expect(pickStatus(spec, () => r)).toBe(code));

  it.each(['', 'abc', '99', '600', '200:-1', '200:0'])('refuses %j', (spec) => expect(pickStatus(spec)).toBeUndefined());

  it('splits "503,200" about evenly', () => {
    let seed = 1;
    const random = (): number => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    let failures = 0;
    for (let i = 0; i < 1000; i++) if (pickStatus('503,200', random) === 503) failures++;
    expect(failures).toBeGreaterThan(430);
    expect(failures).toBeLessThan(570);
  });
});
