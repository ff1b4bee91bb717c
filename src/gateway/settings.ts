/**
 * Every setting of the ingress gateway proxy, read once from the environment (the Pod contract
 * the ingress deployer renders: downward API + AMESH_*), validated, frozen. The settings every
 * L7 proxy shares (CA, xDS, admin ports, upstream dialling) are in src/l7/proxy-settings.ts;
 * here only the gateway's own. The gateway's name is its Deployment's and ServiceAccount's,
 * hence its identity `spiffe://<td>/ns/<ns>/sa/<name>` and its xDS resource `<ns>/<name>`.
 */
import { intSetting, type Setting } from '../config/env-settings.js';
import type { WorkloadIdentity } from '../identity/spiffe.js';
import { k8sName, PROXY_SETTINGS, proxyIdentity, proxyIdentityUri, readProxySettings, type ProxySettings, type ReadProxySettingsOptions } from '../l7/proxy-settings.js';

export interface GatewaySettings extends ProxySettings {
  /** The gateway Deployment's (and ServiceAccount's) name, e.g. `frontend-gateway-istio`, `amesh-ingressgateway`. */
  gatewayName: string;
  /** Deadline for a connection's first bytes (h2c sniff, TLS ClientHello) and TLS handshake. */
  handshakeTimeoutMs: number;
}

const SETTINGS = {
  ...PROXY_SETTINGS,
  // Required (checked on read): the Deployment sets it to its own name.
  gatewayName: { env: 'AMESH_GATEWAY_NAME', default: '', parse: k8sName },
  // Envoy's listener_filters_timeout (15 s): a client that never says hello is closed.
  handshakeTimeoutMs: { env: 'AMESH_HANDSHAKE_TIMEOUT_MS', default: 15_000, parse: intSetting(10, 600_000) },
} satisfies { [K in keyof GatewaySettings]: Setting<GatewaySettings[K]> };

export function gatewaySettingsTable(): ReadonlyArray<{ key: string; env: string; default: unknown }> {
  return Object.entries(SETTINGS).map(([key, s]) => ({ key, env: s.env, default: s.default }));
}

export function readGatewaySettings(env: NodeJS.ProcessEnv, opts: ReadProxySettingsOptions = {}): Readonly<GatewaySettings> {
  return readProxySettings<GatewaySettings>(SETTINGS, env, { nameKey: 'gatewayName', role: 'gateway' }, opts);
}

export function gatewayIdentity(s: Pick<GatewaySettings, 'trustDomain' | 'podNamespace' | 'gatewayName'>): WorkloadIdentity {
  return proxyIdentity(s, s.gatewayName);
}

export function gatewayIdentityUri(s: Pick<GatewaySettings, 'trustDomain' | 'podNamespace' | 'gatewayName'>): string {
  return proxyIdentityUri(s, s.gatewayName);
}

/** The xDS resource this gateway subscribes to (same type URL as waypoints). */
export function gatewayResourceName(s: Pick<GatewaySettings, 'podNamespace' | 'gatewayName'>): string {
  return `${s.podNamespace}/${s.gatewayName}`;
}
