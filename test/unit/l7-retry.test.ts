import { describe, expect, it } from 'vitest';
import type { RetryOn, RetryPolicy } from '../../src/l7/config.js';
import { backoffMs, BACKOFF_MAX_FACTOR, grpcStatusOf, isRetriable, type TryOutcome } from '../../src/l7/resilience/retry.js';

const policy = (retryOn: RetryOn[], retriableStatusCodes?: number[]): RetryPolicy => ({ attempts: 3, retryOn, otherHost: true, ...(retriableStatusCodes ? { retriableStatusCodes } : {}) });
const status = (s: number, grpcStatus?: number): TryOutcome => ({ kind: 'response', status: s, ...(grpcStatus !== undefined ? { grpcStatus } : {}) });
const connect: TryOutcome = { kind: 'failure', failure: 'connect' };
const reset: TryOutcome = { kind: 'failure', failure: 'reset' };
const refused: TryOutcome = { kind: 'failure', failure: 'refused-stream' };
const timeout: TryOutcome = { kind: 'failure', failure: 'timeout' };

describe('isRetriable', () => {
  it.each<[string, RetryOn[], TryOutcome, boolean, number[]?]>([
    ['5xx: 500', ['5xx'], status(500), true],
    ['5xx: 503', ['5xx'], status(503), true],
    ['5xx: 599', ['5xx'], status(599), true],
    ['5xx: not 404', ['5xx'], status(404), false],
    ['5xx: not 200', ['5xx'], status(200), false],
    ['5xx: connect failure', ['5xx'], connect, true],
    ['5xx: reset', ['5xx'], reset, true],
    ['5xx: per-try timeout', ['5xx'], timeout, true],
    ['5xx: refused stream', ['5xx'], refused, true],
    ['gateway-error: 502/503/504', ['gateway-error'], status(504), true],
    ['gateway-error: not 500', ['gateway-error'], status(500), false],
    ['gateway-error: connect failure', ['gateway-error'], connect, true],
    ['gateway-error: per-try timeout', ['gateway-error'], timeout, true],
    ['reset: reset', ['reset'], reset, true],
    ['reset: per-try timeout', ['reset'], timeout, true],
    ['reset: not a 503 response', ['reset'], status(503), false],
    ['connect-failure: connect failure', ['connect-failure'], connect, true],
    ['connect-failure: not reset', ['connect-failure'], reset, false],
    ['connect-failure: not 503', ['connect-failure'], status(503), false],
    ['refused-stream: refused', ['refused-stream'], refused, true],
    ['refused-stream: not reset', ['refused-stream'], reset, false],
    ['retriable-4xx: 409', ['retriable-4xx'], status(409), true],
    ['retriable-4xx: not 429', ['retriable-4xx'], status(429), false],
    ['retriable-status-codes: listed', ['retriable-status-codes'], status(429), true, [429, 418]],
    ['retriable-status-codes: not listed', ['retriable-status-codes'], status(500), false, [429]],
    ['retriable-status-codes: no list', ['retriable-status-codes'], status(429), false],
    ['unavailable: grpc 14 trailers-only', ['unavailable'], status(200, 14), true],
    ['unavailable: not grpc 13', ['unavailable'], status(200, 13), false],
    ['cancelled: grpc 1', ['cancelled'], status(200, 1), true],
    ['deadline-exceeded: grpc 4', ['deadline-exceeded'], status(200, 4), true],
    ['internal: grpc 13', ['internal'], status(200, 13), true],
    ['resource-exhausted: grpc 8', ['resource-exhausted'], status(200, 8), true],
    ['grpc conditions: no grpc-status', ['unavailable', 'internal'], status(200), false],
    ['grpc conditions do not retry resets', ['unavailable'], reset, false],
    ['nothing configured', [], status(503), false],
    ['combined', ['connect-failure', 'retriable-4xx'], status(409), true],
  ])('%s', (_name, on, outcome, expected, codes) => {
    expect(isRetriable(policy(on, codes), outcome)).toBe(expected);
  });
});

describe('backoffMs', () => {
  const always = (v: number) => () => v;
  it.each<[string, number, number, number, number]>([
    ['first retry: [0, base)', 1, 25, 0.999, 24],
    ['second retry: [0, 3 base)', 2, 25, 0.5, 37],
    ['third retry: [0, 7 base)', 3, 25, 0.999, 174],
    ['capped at 10 x base', 4, 25, 0.999, 249],
    ['far retries stay capped', 50, 25, 0.999, 249],
    ['random 0 → no pause', 3, 25, 0, 0],
    ['base 0 → no pause', 2, 0, 0.9, 0],
    ['retry 0 (first try) → no pause', 0, 25, 0.9, 0],
  ])('%s', (_name, retry, base, r, expected) => {
    expect(backoffMs(retry, base, always(r))).toBe(expected);
  });

  it('never exceeds the cap over many draws', () => {
    let seed = 1;
    const random = (): number => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    for (let retry = 1; retry < 10; retry++) for (let i = 0; i < 100; i++) expect(backoffMs(retry, 25, random)).toBeLessThan(BACKOFF_MAX_FACTOR * 25);
  });
});

describe('grpcStatusOf', () => {
  it.each<[string, Record<string, string | string[] | undefined>, number | undefined]>([
    ['present', { 'grpc-status': '14' }, 14],
    ['zero', { 'grpc-status': '0' }, 0],
    ['absent', {}, undefined],
    ['garbage', { 'grpc-status': 'x' }, undefined],
    ['array', { 'grpc-status': ['8', '1'] }, 8],
  ])('%s', (_n, headers, expected) => {
    expect(grpcStatusOf(headers)).toBe(expected);
  });
});
