/**
 * Every setting of the waypoint proxy, read once from the environment (the Pod contract the
 * waypoint deployer renders: downward API + AMESH_*), validated, frozen. The settings every L7
 * proxy shares are in src/l7/proxy-settings.ts; here only the waypoint's own. Each entry says its
 * default and why; an invalid or unknown AMESH_* value fails start-up naming the variable.
 */
import { intSetting, type Setting } from '../config/env-settings.js';
import type { WorkloadIdentity } from '../identity/spiffe.js';
import { k8sName, PROXY_SETTINGS, proxyIdentity, proxyIdentityUri, readProxySettings, type ProxySettings, type ReadProxySettingsOptions } from '../l7/proxy-settings.js';

export interface WaypointSettings extends ProxySettings {
  /** The waypoint Gateway's name: also its ServiceAccount's, hence its identity. */
  waypointName: string;
  hbonePort: number;
  sniffTimeoutMs: number;
}

const SETTINGS = {
  ...PROXY_SETTINGS,
  // Required (checked on read): the Deployment sets it to the Gateway's name.
  waypointName: { env: 'AMESH_WAYPOINT_NAME', default: '', parse: k8sName },
  hbonePort: { env: 'AMESH_HBONE_PORT', default: 15008, parse: intSetting(0, 65535) },
  // Istio's protocol sniffing waits about this long for a client-first protocol.
  sniffTimeoutMs: { env: 'AMESH_SNIFF_TIMEOUT_MS', default: 200, parse: intSetting(1, 60_000) },
} satisfies { [K in keyof WaypointSettings]: Setting<WaypointSettings[K]> };

export function waypointSettingsTable(): ReadonlyArray<{ key: string; env: string; default: unknown }> {
  return Object.entries(SETTINGS).map(([key, s]) => ({ key, env: s.env, default: s.default }));
}

export type ReadWaypointSettingsOptions = ReadProxySettingsOptions;

export function readWaypointSettings(env: NodeJS.ProcessEnv, opts: ReadWaypointSettingsOptions = {}): Readonly<WaypointSettings> {
  return readProxySettings<WaypointSettings>(SETTINGS, env, { nameKey: 'waypointName', role: 'waypoint' }, opts);
}

/** The waypoint's own identity: its ServiceAccount is named like its Gateway. */
export function waypointIdentity(s: Pick<WaypointSettings, 'trustDomain' | 'podNamespace' | 'waypointName'>): WorkloadIdentity {
  return proxyIdentity(s, s.waypointName);
}

export function waypointIdentityUri(s: Pick<WaypointSettings, 'trustDomain' | 'podNamespace' | 'waypointName'>): string {
  return proxyIdentityUri(s, s.waypointName);
}

/** The xDS resource this waypoint subscribes to. */
export function waypointResourceName(s: Pick<WaypointSettings, 'podNamespace' | 'waypointName'>): string {
  return `${s.podNamespace}/${s.waypointName}`;
}
