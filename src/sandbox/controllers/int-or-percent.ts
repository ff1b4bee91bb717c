/**
 * Resolves `maxSurge` / `maxUnavailable` style values: an integer, or a percentage of `total`
 * rounded up (surge) or down (unavailable), as `intstr.GetScaledValueFromIntOrPercent` does.
 */
import type { IntOrPercent } from './kube-types.js';

export function resolveIntOrPercent(value: IntOrPercent | undefined, fallback: IntOrPercent, total: number, roundUp: boolean): number {
  const raw = value ?? fallback;
  if (typeof raw === 'number') return Math.max(0, Math.trunc(raw));
  const match = /^(\d+)%$/.exec(raw.trim());
  if (match) {
    const scaled = (Number(match[1]) * total) / 100;
    return roundUp ? Math.ceil(scaled) : Math.floor(scaled);
  }
  const asInt = Number(raw);
  return Number.isInteger(asInt) && asInt >= 0 ? asInt : resolveIntOrPercent(fallback, fallback, total, roundUp);
}
