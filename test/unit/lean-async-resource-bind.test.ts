/**
 * The lean AsyncResource#bind (src/runtime/lean-async-resource-bind.ts) behaves as Node's own —
 * async scope, AsyncLocalStorage context, `this`, arguments, result, `length`, the
 * `asyncResource` accessor, the error for a non-function — without a DeprecationWarning, and is
 * installed only over Node's DEP0172 implementation. Installed on a subclass, so the rest of this
 * worker keeps Node's.
 */
import { AsyncLocalStorage, AsyncResource, executionAsyncId } from 'node:async_hooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installLeanAsyncResourceBind } from '../../src/runtime/lean-async-resource-bind.js';

class LeanResource extends AsyncResource {}

/** DeprecationWarnings emitted while `fn` runs (and the microtasks after it). */
async function deprecationsDuring(fn: () => void): Promise<string[]> {
  const seen: string[] = [];
  const onWarning = (w: Error & { code?: string }): void => {
    if (w.name === 'DeprecationWarning') seen.push(w.code ?? w.message);
  };
  process.on('warning', onWarning);
  try {
    fn();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', onWarning);
  }
  return seen;
}

describe('installLeanAsyncResourceBind', () => {
  beforeEach(() => {
    expect(installLeanAsyncResourceBind(LeanResource)).toBe('installed');
  });
  afterEach(() => {
    // Back to the inherited (Node's) bind for the next test.
    delete (LeanResource.prototype as { bind?: unknown }).bind;
  });

  it('replaces only the subclass it was given, once', () => {
    expect(LeanResource.prototype.bind).not.toBe(AsyncResource.prototype.bind);
    expect(installLeanAsyncResourceBind(LeanResource)).toBe('already-installed');
    expect(Object.getOwnPropertyDescriptor(LeanResource.prototype, 'bind')).toMatchObject({ enumerable: false, writable: true, configurable: true });
  });

  it("runs the function in the resource's async scope with the caller's this, the arguments and its result", () => {
    const resource = new LeanResource('test');
    const target = { name: 'target' };
    const bound = resource.bind(function (this: unknown, a: number, b: number) {
      return { self: this, sum: a + b, asyncId: executionAsyncId() };
    });
    const result = bound.call(target, 2, 3);
    expect(result).toEqual({ self: target, sum: 5, asyncId: resource.asyncId() });
    expect(executionAsyncId()).not.toBe(resource.asyncId());
  });

  it('binds thisArg when given, and keeps the length of the function', () => {
    const resource = new LeanResource('test');
    const thisArg = { id: 7 };
    // @types/node declares bind(fn) only; Node takes (fn, thisArg).
    const bindWithThis = resource.bind.bind(resource) as unknown as (fn: (this: { id: number }, a: number, b: number, c: number) => number, thisArg: unknown) => (this: unknown, a: number, b: number, c: number) => number;
    const bound = bindWithThis(function (this: { id: number }, _a: number, _b: number, _c: number) {
      return this.id;
    }, thisArg);
    expect(bound.call({ id: 1 }, 0, 0, 0)).toBe(7);
    expect(bound.length).toBe(3);
    expect(resource.bind(() => 0).length).toBe(0);
  });

  it('carries the AsyncLocalStorage store of where the resource was made', () => {
    const als = new AsyncLocalStorage<string>();
    const bound = als.run('at creation', () => new LeanResource('test').bind(() => als.getStore()));
    expect(als.run('at call', () => bound())).toBe('at creation');
  });

  it('keeps the asyncResource accessor (get and set), without a DeprecationWarning', async () => {
    const resource = new LeanResource('test');
    const other = new LeanResource('other');
    const bound = resource.bind(() => 1) as (() => number) & { asyncResource: AsyncResource };
    const warnings = await deprecationsDuring(() => {
      expect(bound.asyncResource).toBe(resource);
      bound.asyncResource = other;
      expect(bound.asyncResource).toBe(other);
    });
    expect(warnings).toEqual([]);
    expect(Object.keys(bound)).toContain('asyncResource');
    // Node's own does warn (DEP0172), which is what the lean one leaves out.
    const nodes = new AsyncResource('node').bind(() => 1) as (() => number) & { asyncResource: AsyncResource };
    expect(await deprecationsDuring(() => void nodes.asyncResource)).toEqual(['DEP0172']);
  });

  it('refuses a non-function as Node does', () => {
    const resource = new LeanResource('test');
    for (const bad of [undefined, null, 42, 'fn', {}]) {
      let leanError: unknown;
      let nodeError: unknown;
      try {
        resource.bind(bad as never);
      } catch (err) {
        leanError = err;
      }
      try {
        new AsyncResource('node').bind(bad as never);
      } catch (err) {
        nodeError = err;
      }
      expect(leanError).toBeInstanceOf(TypeError);
      expect((leanError as { code?: string }).code).toBe('ERR_INVALID_ARG_TYPE');
      expect((leanError as Error).message).toBe((nodeError as Error).message);
    }
  });
});

describe('installLeanAsyncResourceBind over another bind', () => {
  it('leaves a bind that is not Node’s DEP0172 one alone', () => {
    const own = function bind(this: AsyncResource, fn: () => unknown): () => unknown {
      return fn;
    };
    class Other extends AsyncResource {}
    Object.defineProperty(Other.prototype, 'bind', { value: own, writable: true, configurable: true });
    expect(installLeanAsyncResourceBind(Other)).toBe('not-applicable');
    expect(Other.prototype.bind).toBe(own);
  });
});
