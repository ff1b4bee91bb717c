/**
 * Containment of one object's translation. The CRDs amesh ships keep unknown fields
 * (daemonset/crds: `x-kubernetes-preserve-unknown-fields`), so a VirtualService whose `http` is
 * a string, or an AuthorizationPolicy whose `rules[0].from` is a number, reaches the controller.
 * The translators read specs as typed; a value of the wrong type makes them throw, and one throw
 * stopped every publication — a single tenant's malformed object froze the whole mesh's config
 * (found by test/unit/fuzz-translators.test.ts). `contained` turns that throw into the object's
 * own problem: the caller's fallback (an InvalidSpec issue, a fail-closed policy) with the path
 * and what went wrong, so the object's status says it and every other object still translates.
 */
import { describeError } from '../../errors/amesh-error.js';

/** What to tell a user whose object made a translator throw (the first line of the error). */
export function wrongShape(err: unknown): string {
  const first = describeError(err).split('\n')[0] ?? 'translation failed';
  return `a field has a value of the wrong type (${first}); check the object against its API reference`;
}

/** `run()`, or `fallback(reason)` when it throws. */
export function contained<T>(run: () => T, fallback: (reason: string) => T): T {
  try {
    return run();
  } catch (err) {
    return fallback(wrongShape(err));
  }
}

/** `value` when it is an array, else an empty one (a list field holding a scalar or a map). */
export function listOf<T>(value: readonly T[] | undefined | null): readonly T[] {
  return Array.isArray(value) ? value : [];
}
