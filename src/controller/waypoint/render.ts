/**
 * Gateway → the waypoint's ServiceAccount, Deployment and Service, from the template
 * (waypoint/waypoint.yaml). Pure: the template is a parameter (the shipped one by default).
 * `renderTemplate` is the part ingress gateways share (src/controller/gateway/ingress-render.ts).
 *
 * - Placeholders are replaced in string values only; a value left with an unknown `${...}` is a
 *   template bug and throws, naming the placeholder.
 * - Every object gets a controller ownerReference to the Gateway (garbage collection removes them
 *   with it), the Gateway's `spec.infrastructure` labels and annotations (Gateway API), and the
 *   annotation `amesh.io/rendered-hash`: a digest of everything else rendered, by which the
 *   deployer tells "already applied" from "changed" without comparing server-defaulted fields.
 * - Our own labels win over infrastructure labels: the selectors depend on them.
 */
import { createHash } from 'node:crypto';
import { AmeshError } from '../../errors/amesh-error.js';
import type { GatewayObject } from '../translate/waypoint-binding.js';
import { waypointTemplate, type TemplateObject } from './template.js';

export const RENDERED_HASH_ANNOTATION = 'amesh.io/rendered-hash';
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'amesh';
export const DEFAULT_WAYPOINT_IMAGE = 'amesh/waypoint:0.1.0';
export const DEFAULT_CA_ADDRESS = 'amesh-controller.amesh-system.svc:15012';
export const GATEWAY_API_VERSION = 'gateway.networking.k8s.io/v1';

export interface RenderOptions {
  trustDomain: string;
  /** host:port of the mesh CA (default amesh-controller.amesh-system.svc:15012). */
  caAddress?: string;
  /** host:port of the xDS server (default: the CA address). */
  xdsAddress?: string;
  image?: string;
  logLevel?: string;
}

/** A Gateway as read from the API, with the fields rendering reads. */
export interface RenderableGateway extends GatewayObject {
  apiVersion?: string;
  spec?: GatewayObject['spec'] & { infrastructure?: { labels?: Record<string, string>; annotations?: Record<string, string> } };
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: boolean;
}

export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string>; ownerReferences?: OwnerReference[] };
  [field: string]: unknown;
}

export interface RenderedWaypoint {
  serviceAccount: RenderedObject;
  deployment: RenderedObject;
  service: RenderedObject;
  /** In apply order: ServiceAccount (pods need it), Service, Deployment. */
  objects: RenderedObject[];
}

const PLACEHOLDER = /\$\{([A-Za-z0-9_]*)\}/g;

function substitute(value: unknown, values: Readonly<Record<string, string>>, path: string): unknown {
  if (typeof value === 'string') {
    return value.replace(PLACEHOLDER, (_match, name: string) => {
      const replacement = values[name];
      if (replacement === undefined) throw new AmeshError('AMESH_CONFIG_INVALID', `template ${path}: unknown placeholder \${${name}}`, { hint: `known placeholders: ${Object.keys(values).join(', ')}` });
      return replacement;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, values, `${path}[${i}]`));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, values, `${path}.${k}`)]));
  return value;
}

/** A short, stable digest of a JSON value. */
export function digest(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

export function ownerReferenceTo(gateway: RenderableGateway): OwnerReference {
  const name = gateway.metadata.name ?? '';
  const uid = gateway.metadata.uid;
  if (!uid) throw new AmeshError('AMESH_CONFIG_INVALID', `Gateway ${gateway.metadata.namespace ?? 'default'}/${name} has no uid (not read from the API server?)`);
  return { apiVersion: gateway.apiVersion ?? GATEWAY_API_VERSION, kind: 'Gateway', name, uid, controller: true };
}

function withInfrastructure(object: Record<string, unknown>, infra: Infrastructure): void {
  const metadata = (object.metadata ?? {}) as { labels?: Record<string, string>; annotations?: Record<string, string> };
  metadata.labels = { ...infra.labels, ...(metadata.labels ?? {}) };
  metadata.annotations = { ...infra.annotations, ...(metadata.annotations ?? {}) };
  object.metadata = metadata;
}

/** Labels and annotations added to every object and to the pod template (ours win on a clash). */
export interface Infrastructure {
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
}

export interface TemplateRender {
  /** Placeholder values (see the templates' headers). */
  values: Readonly<Record<string, string>>;
  namespace: string;
  /** Set on every object (garbage collection with the owner); absent = unowned. */
  owner?: OwnerReference;
  infrastructure: Infrastructure;
  /** Called on each substituted object before its hash is taken (the ingress adds its listener ports). */
  customize?: (object: RenderedObject) => void;
  /** Names the template in errors. */
  what: string;
}

/**
 * One ServiceAccount, Deployment and Service from a template (the shared part of rendering a
 * waypoint and an ingress gateway).
 */
export function renderTemplate(template: readonly TemplateObject[], r: TemplateRender): RenderedWaypoint {
  const byKind = new Map<string, RenderedObject>();
  for (const doc of template) {
    const object = substitute(structuredClone(doc), r.values, `${doc.kind}`) as Record<string, unknown>;
    withInfrastructure(object, r.infrastructure);
    if (object.kind === 'Deployment') {
      const podTemplate = (object.spec as { template?: Record<string, unknown> } | undefined)?.template;
      if (podTemplate) withInfrastructure(podTemplate, r.infrastructure);
    }
    const metadata = object.metadata as RenderedObject['metadata'];
    metadata.namespace = r.namespace;
    if (r.owner) metadata.ownerReferences = [r.owner];
    r.customize?.(object as RenderedObject);
    const hash = digest(object);
    metadata.annotations = { ...metadata.annotations, [RENDERED_HASH_ANNOTATION]: hash };
    const kind = String(object.kind);
    if (byKind.has(kind)) throw new AmeshError('AMESH_CONFIG_INVALID', `${r.what} template: more than one ${kind}`);
    byKind.set(kind, object as RenderedObject);
  }
  const pick = (kind: string): RenderedObject => {
    const object = byKind.get(kind);
    if (!object) throw new AmeshError('AMESH_CONFIG_INVALID', `${r.what} template: no ${kind}`);
    return object;
  };
  const serviceAccount = pick('ServiceAccount');
  const deployment = pick('Deployment');
  const service = pick('Service');
  return { serviceAccount, deployment, service, objects: [serviceAccount, service, deployment] };
}

/** The placeholders both templates share: identity, CA and xDS addresses, image, log level. */
export function commonValues(name: string, namespace: string, options: RenderOptions, defaultImage: string): Record<string, string> {
  const caAddress = options.caAddress ?? DEFAULT_CA_ADDRESS;
  return {
    NAME: name,
    NAMESPACE: namespace,
    IMAGE: options.image ?? defaultImage,
    TRUST_DOMAIN: options.trustDomain,
    CA_ADDRESS: caAddress,
    XDS_ADDRESS: options.xdsAddress ?? caAddress,
    LOG_LEVEL: options.logLevel ?? 'info',
  };
}

export function renderWaypoint(gateway: RenderableGateway, options: RenderOptions, template: readonly TemplateObject[] = waypointTemplate()): RenderedWaypoint {
  const name = gateway.metadata.name ?? '';
  const namespace = gateway.metadata.namespace ?? 'default';
  return renderTemplate(template, {
    values: commonValues(name, namespace, options, DEFAULT_WAYPOINT_IMAGE),
    namespace,
    owner: ownerReferenceTo(gateway),
    infrastructure: { labels: { ...(gateway.spec?.infrastructure?.labels ?? {}) }, annotations: { ...(gateway.spec?.infrastructure?.annotations ?? {}) } },
    what: 'waypoint',
  });
}
