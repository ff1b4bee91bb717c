/**
 * The ingress translator: Gateway API ingress Gateways + HTTPRoutes, Istio Gateways +
 * VirtualServices, DestinationRules, Secrets and the mesh's workloads → what every ingress
 * gateway runs (IngressResult, ingress-model.ts). Pure: the same view gives the same result.
 *
 * - ingress-gateway-api.ts plans one deployment per Gateway API Gateway of an ingress class
 *   (`<gateway>-<class>` in its namespace) and decides its status and its routes' parent status;
 * - ingress-istio.ts plans the default ingress gateway (`amesh-ingressgateway` in the
 *   controller's namespace) while an Istio Gateway selects it, and the Istio objects' conditions;
 * - ingress-plan.ts assembles each plan into a WaypointConfig of `kind: 'gateway'`;
 * - ingress-clusters.ts gives the clusters their endpoints: HBONE to mesh pods, plain TCP to the
 *   others, through the service's waypoint under `istio.io/ingress-use-waypoint=true`.
 * DestinationRules apply to gateway clusters as to waypoint clusters (the rule in effect per host,
 * destination-rule.ts); their conditions are the waypoint translator's.
 *
 * Bad input never breaks a gateway: an invalid VirtualService or HTTPRoute is left out (or served
 * from its last valid spec, `lastValid`), a listener or server that cannot be served is left out
 * of the config with a condition naming why, and the rest keeps serving.
 */
import type { WaypointConfig } from '../../l7/config.js';
import type { MeshResources, MeshView } from '../mesh/compute-mesh-resources.js';
import type { ConditionSpec } from '../status/policy-status.js';
import { effectiveDestinationRules, translateDestinationRule, type DestinationRuleObject, type RuleCandidate } from './destination-rule.js';
import { ingressClusters } from './ingress-clusters.js';
import { planGatewayApiGateways } from './ingress-gateway-api.js';
import { planIstioGateways } from './ingress-istio.js';
import type { IngressDeployment, IngressGatewayStatus, IngressLastValid, IngressResult } from './ingress-model.js';
import { assembleConfig, objectKey, type DeploymentPlan, type FrontEndContext } from './ingress-plan.js';
import { secretLookup } from './ingress-secrets.js';
import type { LastValid } from './waypoint-config.js';
import type { RouteContext, RouteService } from './route-model.js';
import { DEFAULT_CLUSTER_DOMAIN, serviceHostname } from './service.js';

export const DEFAULT_CONTROLLER_NAMESPACE = 'amesh-system';

export interface IngressOptions {
  trustDomain: string;
  clusterDomain?: string;
  /** Where the default ingress gateway runs (the controller's namespace); default amesh-system. */
  controllerNamespace?: string;
  /** IngressResult.valid of the previous round. */
  lastValid?: ReadonlyMap<string, IngressLastValid>;
  /**
   * The waypoint translator's last valid translations (WaypointConfigResult.valid): a
   * DestinationRule that turned invalid keeps its last valid policy at gateways too, as at
   * waypoints. Without it such a rule is simply not applied at gateways.
   */
  waypointLastValid?: ReadonlyMap<string, LastValid>;
}

function routeContext(view: MeshView, resources: MeshResources, clusterDomain: string, waypointLastValid: ReadonlyMap<string, LastValid> | undefined): RouteContext {
  const services = new Map<string, RouteService>();
  for (const s of resources.services.values()) services.set(s.hostname, { namespace: s.namespace, name: s.name, hostname: s.hostname, ports: [...new Set(s.ports.map((p) => p.servicePort))] });
  const candidates: RuleCandidate[] = [];
  for (const dr of (view.destinationRules ?? []) as DestinationRuleObject[]) {
    const key = objectKey('DestinationRule', dr);
    const t = translateDestinationRule(dr, clusterDomain);
    const last = waypointLastValid?.get(key);
    const use = t.issues.length === 0 ? t : last && last.uid === dr.metadata.uid ? last.destinationRule : undefined;
    if (!use?.host) continue;
    candidates.push({ key: key.slice('DestinationRule/'.length), namespace: dr.metadata.namespace ?? 'default', creationTimestamp: dr.metadata.creationTimestamp, host: use.host, rule: use.rule });
  }
  const { byHost } = effectiveDestinationRules(candidates, [...services.values()]);
  return { clusterDomain, services, destinationRules: byHost };
}

/** Adds `message` to the Warning condition of `key` (creating it). */
function addWarning(status: Map<string, ConditionSpec[]>, key: string, message: string): void {
  const conditions = status.get(key) ?? [];
  const warning = conditions.find((c) => c.type === 'Warning');
  const rest = conditions.filter((c) => c !== warning);
  const text = warning ? (warning.message.includes(message) ? warning.message : `${warning.message}; ${message}`) : message;
  status.set(key, [...rest, { type: 'Warning', status: 'True', reason: 'IgnoredFields', message: text }]);
}

/** Cluster names the planned ports use. */
function usedClusters(plan: DeploymentPlan): Set<string> {
  const names = new Set<string>();
  for (const port of plan.ports.values()) {
    for (const r of port.routes) {
      if (r.action.kind === 'forward') for (const b of r.action.backends) names.add(b.cluster);
      for (const m of r.mirrors ?? []) names.add(m.cluster);
    }
    for (const r of port.l4Routes) for (const b of r.backends) names.add(b.cluster);
  }
  return names;
}

export function computeIngress(view: MeshView, resources: MeshResources, options: IngressOptions): IngressResult {
  const clusterDomain = options.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
  const routeCtx = routeContext(view, resources, clusterDomain, options.waypointLastValid);
  const ctx: FrontEndContext = {
    view,
    routeCtx,
    trustDomain: options.trustDomain,
    clusterDomain,
    controllerNamespace: options.controllerNamespace ?? DEFAULT_CONTROLLER_NAMESPACE,
    secrets: secretLookup(view.secrets ?? []),
    ...(options.lastValid ? { lastValid: options.lastValid } : {}),
    status: new Map(),
    valid: new Map(),
  };
  const gatewayApi = planGatewayApiGateways(ctx);
  const istio = planIstioGateways(ctx);

  const deployments = new Map<string, IngressDeployment>();
  const configs = new Map<string, WaypointConfig>();
  const gateways = new Map<string, IngressGatewayStatus>();
  const build = (plan: DeploymentPlan): void => {
    const used = usedClusters(plan);
    const refs = [...plan.clusters.values()].filter((c) => used.has(c.name));
    const { clusters, notes } = ingressClusters(refs, { view, resources, destinationRules: routeCtx.destinationRules, trustDomain: options.trustDomain, clusterDomain });
    const config = assembleConfig(plan, clusters, routeCtx.destinationRules, serviceHostname(plan.deployment.name, plan.deployment.namespace, clusterDomain));
    const key = `${plan.deployment.namespace}/${plan.deployment.name}`;
    const ports = (config.listeners ?? []).map((l) => ({ name: `${l.protocol.toLowerCase()}-${l.port}`, port: l.port }));
    deployments.set(key, { ...plan.deployment, ports });
    configs.set(key, config);
    // A note about a cluster (its waypoint could not be used) goes to the objects routing to it.
    for (const [cluster, note] of notes) for (const user of plan.clusterUsers.get(cluster) ?? []) addWarning(ctx.status, user, `${key}: ${note}`);
  };
  for (const [key, { plan, status }] of gatewayApi) {
    build(plan);
    gateways.set(key, status);
  }
  if (istio) build(istio);
  return { deployments, configs, gateways, status: ctx.status, valid: ctx.valid };
}
