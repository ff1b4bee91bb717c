/**
 * Deployments, ReplicaSets and DaemonSets (pkg/apis/apps/v1/defaults.go,
 * pkg/apis/apps/validation): workload defaults, a selector that exists, is not empty and
 * selects the pod template, a template valid as a Pod with restartPolicy Always, and a
 * selector that never changes (controllers would orphan their pods).
 */
import { isDeepStrictEqual } from 'node:util';
import type { KubeObject } from '../types.js';
import { isPlainObject, type JsonObject } from '../patch/json-value.js';
import type { FieldErrors } from './field-errors.js';
import { isEmptySelector, selectorMatches, validateLabelSelector, type LabelSelector } from './label-selector.js';
import { validateLabels } from './metadata.js';
import { defaultPodSpec, validatePodSpec } from './pod-spec.js';

export const WORKLOAD_KINDS = ['Deployment', 'ReplicaSet', 'DaemonSet'] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

const DEPLOYMENT_STRATEGIES = ['Recreate', 'RollingUpdate'] as const;
const DAEMONSET_STRATEGIES = ['OnDelete', 'RollingUpdate'] as const;

function defaultWorkload(kind: WorkloadKind, spec: JsonObject): void {
  if (kind !== 'DaemonSet') spec['replicas'] ??= 1;
  if (kind === 'Deployment') {
    const strategy = isPlainObject(spec['strategy']) ? spec['strategy'] : {};
    strategy['type'] ??= 'RollingUpdate';
    if (strategy['type'] === 'RollingUpdate') {
      const rolling = isPlainObject(strategy['rollingUpdate']) ? strategy['rollingUpdate'] : {};
      rolling['maxUnavailable'] ??= '25%';
      rolling['maxSurge'] ??= '25%';
      strategy['rollingUpdate'] = rolling;
    }
    spec['strategy'] = strategy;
    spec['revisionHistoryLimit'] ??= 10;
    spec['progressDeadlineSeconds'] ??= 600;
  }
  if (kind === 'DaemonSet') {
    const strategy = isPlainObject(spec['updateStrategy']) ? spec['updateStrategy'] : {};
    strategy['type'] ??= 'RollingUpdate';
    if (strategy['type'] === 'RollingUpdate') {
      const rolling = isPlainObject(strategy['rollingUpdate']) ? strategy['rollingUpdate'] : {};
      rolling['maxUnavailable'] ??= 1;
      rolling['maxSurge'] ??= 0;
      strategy['rollingUpdate'] = rolling;
    }
    spec['updateStrategy'] = strategy;
    spec['revisionHistoryLimit'] ??= 10;
  }
  const template = spec['template'];
  if (isPlainObject(template) && isPlainObject(template['spec'])) defaultPodSpec(template['spec'], false);
  if (isPlainObject(template)) template['metadata'] ??= {};
}

function validateNonNegativeInt(spec: JsonObject, key: string, errors: FieldErrors): void {
  const value = spec[key];
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < 0)) errors.invalid(`spec.${key}`, value, 'must be greater than or equal to 0');
}

function validateWorkloadSpec(kind: WorkloadKind, spec: JsonObject, errors: FieldErrors): void {
  validateNonNegativeInt(spec, 'replicas', errors);
  validateNonNegativeInt(spec, 'revisionHistoryLimit', errors);
  validateNonNegativeInt(spec, 'minReadySeconds', errors);
  const selector = spec['selector'];
  const template = spec['template'];
  if (!isPlainObject(selector)) errors.required('spec.selector');
  else if (isEmptySelector(selector as LabelSelector)) errors.invalid('spec.selector', selector, `empty selector is invalid for ${kind.toLowerCase()}`);
  else validateLabelSelector(selector as LabelSelector, 'spec.selector', errors);

  if (!isPlainObject(template)) {
    errors.required('spec.template');
  } else {
    const metadata = isPlainObject(template['metadata']) ? template['metadata'] : {};
    const labels = isPlainObject(metadata['labels']) ? (metadata['labels'] as Record<string, string>) : {};
    validateLabels(metadata['labels'], 'spec.template.metadata.labels', errors);
    if (isPlainObject(selector) && !isEmptySelector(selector as LabelSelector) && !selectorMatches(selector as LabelSelector, labels)) {
      errors.invalid('spec.template.metadata.labels', labels, '`selector` does not match template `labels`');
    }
    validatePodSpec(template['spec'], 'spec.template.spec', errors, { restartPolicies: ['Always'] });
  }

  if (kind === 'Deployment' && isPlainObject(spec['strategy'])) {
    const strategy = spec['strategy'];
    if (!(DEPLOYMENT_STRATEGIES as readonly unknown[]).includes(strategy['type'])) errors.notSupported('spec.strategy.type', strategy['type'], DEPLOYMENT_STRATEGIES);
    else if (strategy['type'] === 'Recreate' && strategy['rollingUpdate'] !== undefined) errors.forbidden('spec.strategy.rollingUpdate', "may not be specified when strategy `type` is 'Recreate'");
  }
  if (kind === 'DaemonSet' && isPlainObject(spec['updateStrategy'])) {
    const type = spec['updateStrategy']['type'];
    if (!(DAEMONSET_STRATEGIES as readonly unknown[]).includes(type)) errors.notSupported('spec.updateStrategy.type', type, DAEMONSET_STRATEGIES);
  }
}

export function admitWorkload(kind: WorkloadKind, object: KubeObject, old: KubeObject | undefined, errors: FieldErrors): void {
  if (!isPlainObject(object['spec'])) {
    errors.required('spec');
    return;
  }
  const spec = object['spec'];
  defaultWorkload(kind, spec);
  validateWorkloadSpec(kind, spec, errors);
  const oldSelector = old && isPlainObject(old['spec']) ? old['spec']['selector'] : undefined;
  if (old && oldSelector !== undefined && !isDeepStrictEqual(spec['selector'], oldSelector)) {
    errors.invalid('spec.selector', spec['selector'], 'field is immutable');
  }
}
