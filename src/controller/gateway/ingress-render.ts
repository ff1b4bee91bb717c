/**
 * IngressDeployment → the ingress gateway's ServiceAccount, Deployment and LoadBalancer Service,
 * from waypoint/gateway.yaml through the waypoint renderer's `renderTemplate` (same placeholders,
 * rendered-hash annotation and "ours win" label rule). Pure: the template is a parameter.
 *
 * - A Gateway API deployment gets a controller ownerReference to its Gateway (garbage collection
 *   removes it with the Gateway); the default ingress gateway has no owner — the deployer deletes it
 *   when the translator no longer asks for it, recognising it by DEFAULT_INGRESS_COMPONENT and the
 *   absence of owners.
 * - Listener ports: one Service port each (translator's name, targetPort = port), in the
 *   translator's order, before `status-port`. The Deployment lists none, as Istio's gateway
 *   template does: the pod learns its listeners over xDS and listens on them without a restart,
 *   and a containerPort per listener would roll the Deployment every time a listener is added or
 *   removed. A listener on a port the gateway itself uses (15000 admin, 15020 metrics, 15021
 *   readiness) is not rendered — it would make the Service invalid; `reservedPortsIn` names them
 *   for the status.
 */
import { AmeshError } from '../../errors/amesh-error.js';
import { DEFAULT_INGRESS_NAME, type IngressDeployment } from '../translate/ingress-model.js';
import { commonValues, GATEWAY_API_VERSION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, renderTemplate, type RenderedObject, type RenderedWaypoint, type RenderOptions } from '../waypoint/render.js';
import { gatewayTemplate, type TemplateObject } from '../waypoint/template.js';

export const DEFAULT_GATEWAY_IMAGE = 'amesh/gateway:0.1.0';
/** `app.kubernetes.io/component` of everything rendered from waypoint/gateway.yaml. */
export const INGRESS_COMPONENT = 'ingress-gateway';
export const COMPONENT_LABEL = 'app.kubernetes.io/component';
/** Ports the gateway pod serves itself: admin (localhost), metrics, readiness. */
export const RESERVED_GATEWAY_PORTS: readonly number[] = [15000, 15020, 15021];
const GATEWAY_CONTAINER = 'gateway';

interface PortList {
  ports?: Array<Record<string, unknown>>;
}

/** The listener ports of `deployment` that collide with the gateway's own ports. */
export function reservedPortsIn(deployment: Pick<IngressDeployment, 'ports'>): number[] {
  return deployment.ports.map((p) => p.port).filter((p) => RESERVED_GATEWAY_PORTS.includes(p));
}

/** Checks the template's Deployment has the gateway container; adds the listener ports to the Service. */
function addListenerPorts(object: RenderedObject, ports: ReadonlyArray<{ name: string; port: number }>): void {
  if (object.kind === 'Deployment') {
    const containers = ((object.spec as { template?: { spec?: { containers?: Array<{ name?: string }> } } } | undefined)?.template?.spec?.containers) ?? [];
    if (!containers.some((c) => c.name === GATEWAY_CONTAINER)) throw new AmeshError('AMESH_CONFIG_INVALID', `gateway template: the Deployment has no container named ${GATEWAY_CONTAINER}`);
  } else if (object.kind === 'Service') {
    const spec = (object.spec ?? {}) as PortList;
    spec.ports = [...ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.port, protocol: 'TCP' })), ...(spec.ports ?? [])];
    object.spec = spec;
  }
}

/** The Gateway API Gateway's name for `gateway-name` (the pods' selector); the deployment's name for the default one. */
export function gatewayNameOf(deployment: IngressDeployment): string {
  return deployment.source.kind === 'Gateway' ? deployment.source.name : deployment.name;
}

export function renderIngress(deployment: IngressDeployment, options: RenderOptions, template: readonly TemplateObject[] = gatewayTemplate()): RenderedWaypoint {
  const { namespace, name, source } = deployment;
  if (source.kind === 'Gateway' && !source.uid) throw new AmeshError('AMESH_CONFIG_INVALID', `Gateway ${source.namespace}/${source.name} has no uid (not read from the API server?)`);
  const ports = deployment.ports.filter((p) => !RESERVED_GATEWAY_PORTS.includes(p.port));
  return renderTemplate(template, {
    values: { ...commonValues(name, namespace, options, DEFAULT_GATEWAY_IMAGE), GATEWAY_NAME: gatewayNameOf(deployment) },
    namespace,
    ...(source.kind === 'Gateway' ? { owner: { apiVersion: GATEWAY_API_VERSION, kind: 'Gateway', name: source.name, uid: source.uid, controller: true } } : {}),
    infrastructure: { labels: deployment.labels, annotations: deployment.annotations },
    customize: (object) => addListenerPorts(object, ports),
    what: 'gateway',
  });
}

/** Is this live object the default ingress gateway's (ours, unowned)? */
export function isDefaultIngressObject(object: { metadata?: { name?: string; labels?: Record<string, string>; ownerReferences?: unknown[] } }): boolean {
  const m = object.metadata;
  return m?.name === DEFAULT_INGRESS_NAME && m.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE && m.labels[COMPONENT_LABEL] === INGRESS_COMPONENT && (m.ownerReferences ?? []).length === 0;
}
