/**
 * The contract between the ingress translator (ingress-config.ts: pure, Gateway API + Istio
 * networking objects → what each ingress gateway runs) and the parts that act on it (the ingress
 * deployer renders Deployments/Services, the waypoint publisher serves the configs over xDS, the
 * status writers patch Gateways and routes).
 *
 * Which Gateways are ingress gateways:
 * - Gateway API `Gateway` (gateway.networking.k8s.io) with `gatewayClassName` in
 *   INGRESS_GATEWAY_CLASSES. Its deployment is `<gateway name>-<class name>` in the Gateway's
 *   namespace (Istio's naming: `demo-gateway-istio`), owned by the Gateway.
 * - Istio `networking.istio.io` `Gateway`: its `selector` picks the pods that serve it. A selector
 *   that DEFAULT_INGRESS_LABELS satisfies (`istio: ingressgateway`, the one the seeds use) is
 *   served by the default ingress gateway DEFAULT_INGRESS_NAME in the controller's namespace, which
 *   the controller runs while at least one such Gateway exists. A selector nothing satisfies gets
 *   a condition saying so (no deployment is created for it).
 */
import type { WaypointConfig } from '../../l7/config.js';
import type { ConditionSpec } from '../status/policy-status.js';

/** Gateway API classes deployed as ingress gateways (waypoint classes are `istio-waypoint`, `amesh-waypoint`). */
export const INGRESS_GATEWAY_CLASSES: readonly string[] = ['amesh', 'istio'];

/** The controller name written in GatewayClass / route parent statuses for ingress gateways. */
export const INGRESS_CONTROLLER_NAME = 'amesh.io/gateway-controller';

/** The default ingress gateway (for Istio `networking.istio.io` Gateways). */
export const DEFAULT_INGRESS_NAME = 'amesh-ingressgateway';
/** Its pod labels: what `selector: {istio: ingressgateway}` selects. */
export const DEFAULT_INGRESS_LABELS: Readonly<Record<string, string>> = Object.freeze({ istio: 'ingressgateway', app: 'amesh-ingressgateway' });

/** One ingress gateway the controller runs: a ServiceAccount, Deployment and LoadBalancer Service named `name`. */
export interface IngressDeployment {
  /** The deployment's namespace and name; also the ServiceAccount (its identity) and the xDS resource `<namespace>/<name>`. */
  namespace: string;
  name: string;
  /** What it serves: one Gateway API Gateway (owner of the objects), or the default ingress gateway. */
  source: { kind: 'Gateway'; namespace: string; name: string; uid: string } | { kind: 'default' };
  /** The LoadBalancer Service's ports = the listener ports, sorted; `name` like `http-80` / `https-443` / `tls-…` / `tcp-…`. */
  ports: Array<{ name: string; port: number }>;
  /** Extra pod/Service labels (DEFAULT_INGRESS_LABELS for the default one; Gateway `spec.infrastructure.labels`). */
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
}

/** Gateway API `status.listeners[]` entry (without times: the writer adds them). */
export interface ListenerStatusSpec {
  name: string;
  supportedKinds: Array<{ group: string; kind: string }>;
  attachedRoutes: number;
  /** Accepted, Programmed, ResolvedRefs, Conflicted — Gateway API reasons (InvalidCertificateRef, ProtocolConflict, HostnameConflict, UnsupportedProtocol, …). */
  conditions: ConditionSpec[];
}

/** What the translator decides for one Gateway API ingress Gateway. */
export interface IngressGatewayStatus {
  /** `Accepted` (and, when the config could not be built at all, `Programmed=False`); the deployer adds `Programmed` from its Deployment and Service. */
  conditions: ConditionSpec[];
  listeners: ListenerStatusSpec[];
}

export interface IngressResult {
  /** By `<namespace>/<name>` of the deployment (= xDS resource name). */
  deployments: Map<string, IngressDeployment>;
  /** By the same key; `kind: 'gateway'`, `listeners` set, name/namespace = the deployment's. */
  configs: Map<string, WaypointConfig>;
  /** Gateway API ingress Gateways by `<namespace>/<name>`. */
  gateways: Map<string, IngressGatewayStatus>;
  /**
   * Conditions of the other objects involved, by `<Kind>/<namespace>/<name>`: Istio `Gateway`
   * (key `IstioGateway/<ns>/<name>`), VirtualServices bound with `gateways:` other than `mesh`
   * (key `VirtualService/<ns>/<name>`; merged by the caller with the waypoint translator's
   * conditions for the same object), and HTTPRoutes / GRPCRoutes / TLSRoutes / TCPRoutes whose
   * parentRefs name an ingress Gateway — their parent status for that Gateway, key
   * `HTTPRoute/<ns>/<name>@<gateway ns>/<gateway name>` (`GRPCRoute/…@…`, `TLSRoute/…@…`,
   * `TCPRoute/…@…` alike).
   */
  status: Map<string, ConditionSpec[]>;
  /**
   * The spec of every VirtualService / HTTPRoute / GRPCRoute / TLSRoute / TCPRoute the ingress
   * configs use this round, by the status key of the object (`VirtualService/<ns>/<name>`,
   * `HTTPRoute/<ns>/<name>`, `GRPCRoute/<ns>/<name>`, `TLSRoute/…`, `TCPRoute/…`): the caller's next `IngressOptions.lastValid`. An object that turns
   * invalid keeps being served from its last valid spec (same uid), as waypoints do; its
   * Accepted=False message says so.
   */
  valid: Map<string, IngressLastValid>;
}

/** A routing object's last valid spec (ingress side; the waypoint translator keeps its own). */
export interface IngressLastValid {
  uid?: string;
  generation?: number;
  spec: unknown;
}
