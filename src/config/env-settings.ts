/**
 * The machinery every component's settings share (agent-config.ts, controller-config.ts): a
 * setting is an environment variable with a default and a parser; parsers fail naming the
 * variable and what was expected; an `AMESH_*` variable nobody declares is refused, so a typo
 * never silently falls back to a default.
 */
import { AmeshError } from '../errors/amesh-error.js';

export interface Setting<T> {
  env: string;
  default: T;
  parse: (raw: string, env: string) => T;
}

/** AMESH_* variables used by the CLI or tests, never settings of a component. */
const SHARED_IGNORED = ['AMESH_ALLOW_UNPRIVILEGED_SKIP', 'AMESH_SANDBOX_DIR'];

export function invalidSetting(env: string, raw: string, expected: string): never {
  throw new AmeshError('AMESH_CONFIG_INVALID', `${env}=${JSON.stringify(raw)} is invalid: expected ${expected}`);
}

/** Whole numbers in [min, max]; `Number()` syntax, so 0x… works for marks and masks. */
export const intSetting =
  (min: number, max: number) =>
  (raw: string, env: string): number => {
    const n = Number(raw.trim());
    if (!Number.isInteger(n) || n < min || n > max) invalidSetting(env, raw, `an integer from ${min} to ${max} (0x… accepted)`);
    return n;
  };

export const oneOfSetting =
  <T extends string>(values: readonly T[]) =>
  (raw: string, env: string): T => {
    if (!(values as readonly string[]).includes(raw)) invalidSetting(env, raw, `one of ${values.join(', ')}`);
    return raw as T;
  };

/**
 * Every setting of `settings` from `env` (empty = default), after refusing unknown AMESH_*
 * variables. The caller derives and cross-checks what depends on several settings.
 */
export function readSettings<C>(settings: { [K in keyof C]: Setting<C[K]> }, env: NodeJS.ProcessEnv, ignored: readonly string[] = []): C {
  const all = Object.values(settings) as Setting<unknown>[];
  const known = new Set(all.map((s) => s.env));
  const skip = new Set([...SHARED_IGNORED, ...ignored]);
  for (const key of Object.keys(env)) {
    if (key.startsWith('AMESH_') && !known.has(key) && !skip.has(key)) {
      throw new AmeshError('AMESH_CONFIG_INVALID', `unknown setting ${key}`, { hint: `known settings: ${[...known].join(', ')}` });
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(settings) as [string, Setting<unknown>][]) {
    const raw = env[setting.env];
    out[key] = raw === undefined || raw === '' ? setting.default : setting.parse(raw, setting.env);
  }
  return out as C;
}
