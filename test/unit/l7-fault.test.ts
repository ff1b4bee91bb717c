import { describe, expect, it } from 'vitest';
import type { FaultPolicy } from '../../src/l7/config.js';
import { decideFault, httpStatusForGrpc, type FaultDecision } from '../../src/l7/resilience/fault.js';

/** Returns the given draws in order (then 0.99): what each percentage check sees. */
const draws = (...values: number[]): (() => number) => {
  let i = 0;
  return () => values[i++] ?? 0.99;
};

describe('decideFault', () => {
  it.each<[string, FaultPolicy | undefined, number[], FaultDecision]>([
    ['no policy', undefined, [], {}],
    ['delay drawn', { delay: { percent: 10, delayMs: 2000 } }, [0.05], { delayMs: 2000 }],
    ['delay not drawn', { delay: { percent: 10, delayMs: 2000 } }, [0.1], {}],
    ['delay 100 % needs no draw', { delay: { percent: 100, delayMs: 5 } }, [], { delayMs: 5 }],
    ['delay 0 %', { delay: { percent: 0, delayMs: 5 } }, [0], {}],
    ['delay of 0 ms is no delay', { delay: { percent: 100, delayMs: 0 } }, [], {}],
    ['abort with HTTP status', { abort: { percent: 20, httpStatus: 500 } }, [0.19], { abort: { httpStatus: 500, grpcStatus: 2 } }],
    ['abort 503 maps to UNAVAILABLE for gRPC', { abort: { percent: 100, httpStatus: 503 } }, [], { abort: { httpStatus: 503, grpcStatus: 14 } }],
    ['abort not drawn', { abort: { percent: 20, httpStatus: 500 } }, [0.2], {}],
    ['abort with gRPC status only', { abort: { percent: 100, grpcStatus: 14 } }, [], { abort: { httpStatus: 503, grpcStatus: 14 } }],
    ['abort with both', { abort: { percent: 100, httpStatus: 418, grpcStatus: 8 } }, [], { abort: { httpStatus: 418, grpcStatus: 8 } }],
    ['abort without any status is ignored', { abort: { percent: 100 } }, [], {}],
    ['fractional percent', { abort: { percent: 0.5, httpStatus: 500 } }, [0.004], { abort: { httpStatus: 500, grpcStatus: 2 } }],
    // Independent draws: the delay consumes the first, the abort the second.
    ['both drawn', { delay: { percent: 50, delayMs: 10 }, abort: { percent: 50, httpStatus: 503 } }, [0.1, 0.2], { delayMs: 10, abort: { httpStatus: 503, grpcStatus: 14 } }],
    ['delay drawn, abort not', { delay: { percent: 50, delayMs: 10 }, abort: { percent: 50, httpStatus: 503 } }, [0.1, 0.7], { delayMs: 10 }],
    ['abort drawn, delay not', { delay: { percent: 50, delayMs: 10 }, abort: { percent: 50, httpStatus: 503 } }, [0.7, 0.1], { abort: { httpStatus: 503, grpcStatus: 14 } }],
  ])('%s', (_name, policy, values, expected) => {
    expect(decideFault(policy, draws(...values))).toEqual(expected);
  });

  it('observed rates follow the percentages (seeded)', () => {
    let seed = 42;
    const random = (): number => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    let delayed = 0;
    let aborted = 0;
    for (let i = 0; i < 10_000; i++) {
      const d = decideFault({ delay: { percent: 10, delayMs: 1 }, abort: { percent: 20, httpStatus: 500 } }, random);
      if (d.delayMs) delayed++;
      if (d.abort) aborted++;
    }
    expect(Math.abs(delayed / 100 - 10)).toBeLessThan(1.5);
    expect(Math.abs(aborted / 100 - 20)).toBeLessThan(1.5);
  });
});

describe('httpStatusForGrpc', () => {
  it.each([
    [14, 503],
    [4, 504],
    [7, 403],
    [16, 401],
    [8, 429],
    [12, 501],
    [2, 500],
    [13, 500],
  ])('gRPC %i → HTTP %i', (g, h) => expect(httpStatusForGrpc(g)).toBe(h));
});
