/**
 * CustomResourceDefinitions (apiextensions validation, the parts the sandbox registry relies
 * on to serve the new type): group, names, scope, exactly one storage version, and the name
 * `<plural>.<group>`. Defaults: singular, listKind, conversion None.
 */
import type { KubeObject } from '../types.js';
import { isPlainObject } from '../patch/json-value.js';
import type { FieldErrors } from './field-errors.js';
import { dns1035Label, dns1123Label, dns1123Subdomain } from './names.js';

const SCOPES = ['Cluster', 'Namespaced'] as const;

export function admitCustomResourceDefinition(crd: KubeObject, errors: FieldErrors): void {
  const spec = crd['spec'];
  if (!isPlainObject(spec)) {
    errors.required('spec');
    return;
  }
  const group = spec['group'];
  if (typeof group !== 'string' || group === '') errors.required('spec.group');
  else {
    for (const message of dns1123Subdomain(group)) errors.invalid('spec.group', group, message);
    if (!group.includes('.')) errors.invalid('spec.group', group, 'should be a domain with at least one dot');
  }
  if (!(SCOPES as readonly unknown[]).includes(spec['scope'])) {
    if (spec['scope'] === undefined || spec['scope'] === '') errors.required('spec.scope');
    else errors.notSupported('spec.scope', spec['scope'], SCOPES);
  }

  const names = isPlainObject(spec['names']) ? spec['names'] : undefined;
  if (!names) errors.required('spec.names');
  const plural = names?.['plural'];
  const kind = names?.['kind'];
  if (names) {
    if (typeof plural !== 'string' || plural === '') errors.required('spec.names.plural');
    else for (const message of dns1123Label(plural)) errors.invalid('spec.names.plural', plural, message);
    if (typeof kind !== 'string' || kind === '') errors.required('spec.names.kind');
    else {
      if (!/^[A-Za-z][A-Za-z0-9]*$/.test(kind)) errors.invalid('spec.names.kind', kind, 'may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?');
      names['singular'] ??= kind.toLowerCase();
      names['listKind'] ??= `${kind}List`;
    }
    const singular = names['singular'];
    if (typeof singular === 'string') for (const message of dns1035Label(singular)) errors.invalid('spec.names.singular', singular, message);
  }
  if (typeof plural === 'string' && typeof group === 'string' && crd.metadata.name !== `${plural}.${group}`) {
    errors.invalid('metadata.name', crd.metadata.name ?? '', 'must be spec.names.plural+"."+spec.group');
  }

  const versions = spec['versions'];
  if (!Array.isArray(versions) || versions.length === 0) {
    errors.invalid('spec.versions', versions ?? null, 'must have exactly one version marked as storage version');
  } else {
    const seen = new Set<string>();
    versions.forEach((version: unknown, i) => {
      const at = `spec.versions[${i}]`;
      if (!isPlainObject(version)) return errors.typeInvalid(at, version, 'must be an object');
      const name = version['name'];
      if (typeof name !== 'string' || name === '') errors.required(`${at}.name`);
      else {
        for (const message of dns1035Label(name)) errors.invalid(`${at}.name`, name, message);
        if (seen.has(name)) errors.duplicate(`${at}.name`, name);
        seen.add(name);
      }
      if (typeof version['served'] !== 'boolean') errors.required(`${at}.served`);
      if (typeof version['storage'] !== 'boolean') errors.required(`${at}.storage`);
    });
    const storage = versions.filter((v: unknown) => isPlainObject(v) && v['storage'] === true).length;
    if (storage !== 1) errors.invalid('spec.versions', versions.map((v: unknown) => (isPlainObject(v) ? v['name'] : v)), 'must have exactly one version marked as storage version');
  }
  spec['conversion'] ??= { strategy: 'None' };
}
