/**
 * Admission for the sandbox API server: defaulting, then validation, per kind — what
 * kube-apiserver's defaulters, built-in admission plugins (ServiceAccount,
 * DefaultTolerationSeconds) and validators do, for the kinds the sandbox serves.
 * `admit` is pure apart from the ClusterIP callbacks: it returns a defaulted copy or throws
 * the 422 kube-apiserver would (`Deployment.apps "web" is invalid: spec.selector: Required
 * value`). The store calls it on every create and update (patches included), before writing.
 *
 * Writes to the `status` subresource skip spec defaulting and validation (Kubernetes
 * validates status there; the sandbox trusts its own controllers and kubelets).
 */
import type { KubeObject, ResourceType } from '../types.js';
import { hasStrategicSchema } from '../patch/list-strategy.js';
import { admitConfigMap, admitSecret } from './config-data.js';
import { admitCustomResourceDefinition } from './crd.js';
import { admitCustomResource } from './custom-resource.js';
import { FieldErrors } from './field-errors.js';
import { validateObjectMeta, type NameRule } from './metadata.js';
import { dns1035Label, dns1123Label, dns1123Subdomain } from './names.js';
import { admitPodCreate, admitPodUpdate } from './pod.js';
import { admitPodDisruptionBudget, admitRbac, RBAC_GROUP, RBAC_KINDS, type RbacKind } from './rbac-policy.js';
import { admitServiceCreate, admitServiceUpdate } from './service.js';
import { admitEndpointSlice, admitNamespace } from './simple-kinds.js';
import { WORKLOAD_KINDS, admitWorkload, type WorkloadKind } from './workloads.js';

export interface AdmissionContext {
  operation: 'CREATE' | 'UPDATE';
  resourceType: ResourceType;
  oldObject?: KubeObject;
  subresource?: 'status';
  allocateClusterIp(): string;
  releaseClusterIp(ip: string): void;
  isClusterIpInUse(ip: string): boolean;
}

/** Names that become DNS labels in the cluster are stricter than the usual subdomain. */
function nameRuleFor(type: ResourceType): NameRule {
  if (type.group === '' && type.kind === 'Namespace') return dns1123Label;
  if (type.group === '' && type.kind === 'Service') return dns1035Label;
  return dns1123Subdomain;
}

/** Request-only kinds (TokenReview) carry no stored object to validate. */
function isVirtual(type: ResourceType): boolean {
  return type.verbs.length > 0 && type.verbs.every((verb) => verb === 'create') && type.group === 'authentication.k8s.io';
}

function displayName(object: KubeObject): string {
  return object.metadata?.name ?? object.metadata?.generateName ?? '';
}

export function admit(object: KubeObject, ctx: AdmissionContext): KubeObject {
  const out = structuredClone(object);
  const type = ctx.resourceType;
  if (isVirtual(type)) return out;
  const errors = new FieldErrors();
  validateObjectMeta(out.metadata, nameRuleFor(type), errors);
  if (ctx.subresource === 'status') {
    errors.throwIfAny(type, displayName(out));
    return out;
  }
  const old = ctx.operation === 'UPDATE' ? ctx.oldObject : undefined;

  if (!hasStrategicSchema(type)) {
    admitCustomResource(out, errors);
  } else if (type.group === '') {
    switch (type.kind) {
      case 'Namespace':
        admitNamespace(out, ctx.operation);
        break;
      case 'Pod':
        if (old) admitPodUpdate(out, old, errors);
        else admitPodCreate(out, errors);
        break;
      case 'Service':
        // ClusterIP allocation happens last inside, so metadata errors must be known first.
        if (errors.empty) {
          if (old) admitServiceUpdate(out, old, ctx, errors);
          else admitServiceCreate(out, ctx, errors);
        }
        break;
      case 'ConfigMap':
        admitConfigMap(out, errors);
        break;
      case 'Secret':
        admitSecret(out, errors);
        break;
      default:
        break;
    }
  } else if (type.group === 'apps' && (WORKLOAD_KINDS as readonly string[]).includes(type.kind)) {
    admitWorkload(type.kind as WorkloadKind, out, old, errors);
  } else if (type.group === 'discovery.k8s.io' && type.kind === 'EndpointSlice') {
    admitEndpointSlice(out, errors);
  } else if (type.group === RBAC_GROUP && (RBAC_KINDS as readonly string[]).includes(type.kind)) {
    admitRbac(type.kind as RbacKind, out, old, errors);
  } else if (type.group === 'policy' && type.kind === 'PodDisruptionBudget') {
    admitPodDisruptionBudget(out, errors);
  } else if (type.group === 'apiextensions.k8s.io' && type.kind === 'CustomResourceDefinition') {
    admitCustomResourceDefinition(out, errors);
  }
  errors.throwIfAny(type, displayName(out));
  return out;
}
