/**
 * DestinationRule `localityLbSetting` basics, as priority levels (Istio's locality failover):
 * an endpoint in the waypoint's own region/zone/subzone is priority 0, same region and zone 1,
 * same region 2, then the `failover` target regions of the local region in the order listed,
 * then everything else. The balancer uses the best level that has an eligible endpoint and falls
 * to the next only when a level has none (Envoy's overprovisioning factor, which spills traffic
 * gradually as a level degrades, is not modelled). Pure functions.
 */
import type { LocalityLb } from '../config.js';

export interface Locality {
  region: string;
  zone: string;
  subzone: string;
}

/** `region/zone/subzone`; missing parts are ''. */
export function parseLocality(value: string | undefined): Locality {
  const [region = '', zone = '', subzone = ''] = (value ?? '').split('/');
  return { region, zone, subzone };
}

/**
 * The priority of an endpoint at `endpointLocality` for a waypoint configured with `lb`; lower is
 * nearer. When the waypoint's own region is unknown every endpoint is priority 0 (no preference);
 * an endpoint of unknown locality is in the last level.
 */
export function localityPriority(lb: LocalityLb, endpointLocality: string | undefined): number {
  const local = parseLocality(lb.local);
  if (local.region === '') return 0;
  const failovers = (lb.failover ?? []).filter((f) => f.from === local.region).map((f) => f.to);
  const rest = 3 + failovers.length;
  if (endpointLocality === undefined || endpointLocality === '') return rest;
  const e = parseLocality(endpointLocality);
  if (e.region === local.region) {
    if (e.zone !== local.zone) return 2;
    return e.subzone === local.subzone ? 0 : 1;
  }
  const i = failovers.indexOf(e.region);
  return i >= 0 ? 3 + i : rest;
}

/** The items of the best (lowest) priority level present; `items` in order. */
export function nearestLevel<T>(items: readonly T[], priority: (item: T) => number): T[] {
  let best = Infinity;
  for (const item of items) best = Math.min(best, priority(item));
  return items.filter((item) => priority(item) === best);
}
