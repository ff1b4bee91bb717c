/**
 * Header mutation (Istio `headers.request|response`, Gateway API Request/ResponseHeaderModifier):
 * `set` replaces (or adds), `add` appends a value, `remove` deletes — in that order, as Envoy
 * applies Istio's set/add/remove. Names are case-insensitive (stored lower case). Mutates the
 * given header object in place (it is always a fresh copy owned by the request). Pseudo headers
 * (`:path`, …) are never touched.
 */
import type { HeaderMutation } from '../config.js';

export type MutableHeaders = Record<string, string | string[] | number | undefined>;

export function applyHeaderMutation(headers: MutableHeaders, m: HeaderMutation): void {
  if (m.set) {
    for (const [name, value] of Object.entries(m.set)) {
      const key = name.toLowerCase();
      if (!key.startsWith(':')) headers[key] = value;
    }
  }
  if (m.add) {
    for (const [name, value] of Object.entries(m.add)) {
      const key = name.toLowerCase();
      if (key.startsWith(':')) continue;
      const current = headers[key];
      if (current === undefined) headers[key] = value;
      else if (Array.isArray(current)) headers[key] = [...current, value];
      else headers[key] = [String(current), value];
    }
  }
  for (const name of m.remove ?? []) {
    const key = name.toLowerCase();
    if (!key.startsWith(':')) delete headers[key];
  }
}

export function applyHeaderMutations(headers: MutableHeaders, mutations: readonly HeaderMutation[]): void {
  for (const m of mutations) applyHeaderMutation(headers, m);
}
