/**
 * Structure-aware fuzzing of plain JSON objects with fast-check: a seed object (a sample's CRD,
 * a decoded xDS resource) is mutated at random paths — a value replaced by another of any JSON
 * type, a key deleted, an array emptied or duplicated, a string made huge or odd — so the input
 * stays close enough to valid to reach deep into a translator, yet is wrong in every way the
 * API server would let through for a CRD without a schema.
 */
import fc from 'fast-check';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type Mutation =
  | { op: 'replace'; at: number; value: Json }
  | { op: 'delete'; at: number }
  | { op: 'duplicate'; at: number }
  | { op: 'string'; at: number; value: string };

/** Strings that have broken parsers before: empty, huge, unicode, regex and glob metacharacters, numbers as text, paths. */
export const HOSTILE_STRINGS: readonly string[] = [
  '',
  ' ',
  '*',
  '**',
  '*.*',
  '.',
  '..',
  '/',
  '//',
  '../../etc/passwd',
  'a'.repeat(10_000),
  '('.repeat(200),
  '[',
  '\\',
  '%00',
  '\u0000',
  '\ud800',
  'ÿ',
  '💥',
  '-1',
  '0',
  '65536',
  '1e309',
  'NaN',
  '0x10',
  '__proto__',
  'constructor',
  'toString',
  '10.0.0.1/33',
  '::ffff:10.0.0.1',
  '[::1]:80',
  'spiffe://cluster.local/ns/x/sa/y',
  'GET',
  '1h',
  '-5s',
  '99999999999s',
];

export const hostileString: fc.Arbitrary<string> = fc.oneof(fc.constantFrom(...HOSTILE_STRINGS), fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 }));

/** Any JSON value, small, with hostile strings and numbers mixed in. */
export const hostileJson: fc.Arbitrary<Json> = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.constantFrom(0, -1, 1, 65535, 65536, 2 ** 31, -(2 ** 53), 1.5, Number.MAX_SAFE_INTEGER),
    fc.integer(),
    hostileString,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(hostileString, fc.constantFrom('name', 'host', 'port', 'number', 'match', 'route', 'weight', 'exact', 'prefix', 'regex')), tie('value'), { maxKeys: 4 }),
  ),
})).value;

export const mutations = (maxMutations = 4): fc.Arbitrary<Mutation[]> =>
  fc.array(
    fc.oneof(
      { weight: 4, arbitrary: fc.record({ op: fc.constant('replace' as const), at: fc.nat(), value: hostileJson }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), at: fc.nat() }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('duplicate' as const), at: fc.nat() }) },
      { weight: 3, arbitrary: fc.record({ op: fc.constant('string' as const), at: fc.nat(), value: hostileString }) },
    ),
    { minLength: 1, maxLength: maxMutations },
  );

interface Slot {
  parent: Json[] | { [key: string]: Json };
  key: string | number;
}

/** Every (parent, key) below `root`, depth first, not descending into root's `skip` keys. */
function slots(root: Json, skip: readonly string[]): Slot[] {
  const out: Slot[] = [];
  const walk = (node: Json): void => {
    if (Array.isArray(node)) {
      node.forEach((child, i) => {
        out.push({ parent: node, key: i });
        walk(child);
      });
    } else if (node !== null && typeof node === 'object') {
      for (const [key, child] of Object.entries(node)) {
        if (node === root && skip.includes(key)) continue;
        out.push({ parent: node, key });
        walk(child);
      }
    }
  };
  walk(root);
  return out;
}

/** A mutated deep copy of `seed`; `skip` names top-level keys left alone (e.g. `metadata`). */
export function mutate<T>(seed: T, list: readonly Mutation[], skip: readonly string[] = []): T {
  const root = structuredClone(seed) as unknown as Json;
  for (const m of list) {
    const all = slots(root, skip);
    if (all.length === 0) break;
    const { parent, key } = all[m.at % all.length] as Slot;
    const current = (parent as Record<string | number, Json>)[key] as Json;
    switch (m.op) {
      case 'replace':
        (parent as Record<string | number, Json>)[key] = structuredClone(m.value);
        break;
      case 'string':
        (parent as Record<string | number, Json>)[key] = m.value;
        break;
      case 'delete':
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete parent[key as string];
        break;
      case 'duplicate':
        if (Array.isArray(parent)) parent.splice(key as number, 0, structuredClone(current));
        else if (Array.isArray(current)) current.push(...structuredClone(current));
        break;
    }
  }
  return root as unknown as T;
}

/** Run counts per property, printed once at the end of a file so the README can cite them. */
export function fuzzCounter(label: string): { add(name: string, runs: number): void; report(): string } {
  const counts = new Map<string, number>();
  return {
    add(name, runs) {
      counts.set(name, (counts.get(name) ?? 0) + runs);
    },
    report() {
      const lines = [...counts].map(([name, runs]) => `  ${name}: ${runs}`);
      const text = `${label} fuzz runs (seed ${FUZZ_SEED}):\n${lines.join('\n')}`;
      console.log(text);
      return text;
    },
  };
}

/** One seed for every fuzz file; override with AMESH_FUZZ_SEED to explore, the failure message prints the seed and path to replay. */
export const FUZZ_SEED = Number(process.env.AMESH_FUZZ_SEED ?? 20261203);
