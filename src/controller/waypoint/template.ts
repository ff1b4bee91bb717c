/**
 * The templates of the pods the controller deploys — waypoint/waypoint.yaml (waypoints) and
 * waypoint/gateway.yaml (ingress gateways), at the package root so the same files serve src/
 * under vitest and dist/src/ after a build: each read and parsed once, then shared. A template is
 * data — the renderer (render.ts) substitutes placeholders in its string values.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { AmeshError } from '../../errors/amesh-error.js';
import { PACKAGE_ROOT } from '../../os/package-root.js';

export const WAYPOINT_TEMPLATE_PATH = join(PACKAGE_ROOT, 'waypoint', 'waypoint.yaml');
export const GATEWAY_TEMPLATE_PATH = join(PACKAGE_ROOT, 'waypoint', 'gateway.yaml');

/** One parsed template document (plain JSON). */
export interface TemplateObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> } & Record<string, unknown>;
  [field: string]: unknown;
}

/** Parses the template text; every document must be an object with apiVersion, kind and metadata.name. */
export function parseWaypointTemplate(text: string, source = 'waypoint template'): TemplateObject[] {
  const out: TemplateObject[] = [];
  parseAllDocuments(text).forEach((doc, index) => {
    if (doc.errors.length) throw new AmeshError('AMESH_CONFIG_INVALID', `${source}: document ${index + 1} is not valid YAML: ${doc.errors[0]?.message}`);
    const value = doc.toJSON() as Partial<TemplateObject> | null;
    if (value === null || value === undefined) return;
    if (typeof value !== 'object' || !value.apiVersion || !value.kind || !value.metadata?.name) {
      throw new AmeshError('AMESH_CONFIG_INVALID', `${source}: document ${index + 1} needs apiVersion, kind and metadata.name`);
    }
    out.push(value as TemplateObject);
  });
  if (out.length === 0) throw new AmeshError('AMESH_CONFIG_INVALID', `${source}: no objects`);
  return out;
}

const cached = new Map<string, readonly TemplateObject[]>();

/** A shipped template, parsed on first use. */
export function loadTemplate(path: string): readonly TemplateObject[] {
  let template = cached.get(path);
  if (!template) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new AmeshError('AMESH_CONFIG_INVALID', `cannot read the template ${path}`, { cause: err, hint: 'the waypoint/ directory ships beside dist/ and proto/' });
    }
    template = Object.freeze(parseWaypointTemplate(text, path));
    cached.set(path, template);
  }
  return template;
}

/** The waypoint template (waypoint/waypoint.yaml). */
export function waypointTemplate(): readonly TemplateObject[] {
  return loadTemplate(WAYPOINT_TEMPLATE_PATH);
}

/** The ingress gateway template (waypoint/gateway.yaml). */
export function gatewayTemplate(): readonly TemplateObject[] {
  return loadTemplate(GATEWAY_TEMPLATE_PATH);
}
