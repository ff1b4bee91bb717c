/**
 * Sets of field paths, the currency of server-side apply ownership, and their `FieldsV1`
 * encoding in `metadata.managedFields`:
 * `{"f:spec":{"f:replicas":{},"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{}}}}}`.
 * Path elements are `f:<field>`, `k:<json of merge key>` (an item of a keyed list),
 * `v:<json value>` (an item of a set list); `.` marks a member that also has members below it.
 * https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management
 *
 * Members are leaves (scalars, atomic lists, empty maps) and list items; a non-empty map is
 * not itself a member, so two managers can own different keys of one map.
 */
import { isDeepStrictEqual } from 'node:util';
import { isPlainObject, type JsonObject } from './json-value.js';
import { childPath, itemPath, type ListSchema } from './list-strategy.js';

export type FieldPath = readonly string[];

const SEPARATOR = '\u0000';

function keyOf(path: FieldPath): string {
  return path.join(SEPARATOR);
}

export class FieldSet {
  private readonly members = new Map<string, FieldPath>();

  constructor(paths: Iterable<FieldPath> = []) {
    for (const path of paths) this.add(path);
  }

  add(path: FieldPath): void {
    this.members.set(keyOf(path), path);
  }
  has(path: FieldPath): boolean {
    return this.members.has(keyOf(path));
  }
  delete(path: FieldPath): void {
    this.members.delete(keyOf(path));
  }
  get size(): number {
    return this.members.size;
  }
  paths(): FieldPath[] {
    return [...this.members.values()];
  }
  /** True when `path` or anything below it is a member. */
  coversOrContains(path: FieldPath): boolean {
    const prefix = keyOf(path);
    for (const key of this.members.keys()) if (key === prefix || key.startsWith(prefix + SEPARATOR)) return true;
    return false;
  }
  union(other: FieldSet): FieldSet {
    return new FieldSet([...this.paths(), ...other.paths()]);
  }
  difference(other: FieldSet): FieldSet {
    return new FieldSet(this.paths().filter((p) => !other.has(p)));
  }
}

/** Schema paths never tracked: identity and server-owned metadata. */
const UNTRACKED = new Set(['apiVersion', 'kind', 'metadata.name', 'metadata.namespace', 'metadata.uid', 'metadata.resourceVersion', 'metadata.generation', 'metadata.creationTimestamp', 'metadata.deletionTimestamp', 'metadata.deletionGracePeriodSeconds', 'metadata.managedFields', 'metadata.selfLink']);

/** The item path element of a keyed list item, or undefined when the item lacks the key. */
export function itemElement(item: unknown, key: string): string | undefined {
  if (!isPlainObject(item) || item[key] === undefined || item[key] === null) return undefined;
  return `k:${JSON.stringify({ [key]: item[key] })}`;
}

/** Every member of `value` (an object) under `schema`. */
export function fieldSetOf(value: JsonObject, schema: ListSchema): FieldSet {
  const set = new FieldSet();
  const walk = (node: unknown, path: string[], schemaPath: string): void => {
    if (isPlainObject(node)) {
      const entries = Object.entries(node);
      if (entries.length === 0 && path.length > 0) set.add(path);
      for (const [field, child] of entries) {
        const childSchema = childPath(schemaPath, field);
        if (UNTRACKED.has(childSchema)) continue;
        walk(child, [...path, `f:${field}`], childSchema);
      }
      return;
    }
    if (Array.isArray(node)) {
      const strategy = schema(schemaPath);
      if (strategy.type === 'set' && node.every((item) => !isPlainObject(item) && !Array.isArray(item))) {
        for (const item of node) set.add([...path, `v:${JSON.stringify(item)}`]);
        return;
      }
      if (strategy.type === 'map') {
        const elements = node.map((item) => itemElement(item, strategy.key));
        if (elements.every((e) => e !== undefined)) {
          node.forEach((item, i) => {
            const itemFieldPath = [...path, elements[i] as string];
            set.add(itemFieldPath);
            walk(item, itemFieldPath, itemPath(schemaPath));
          });
          return;
        }
      }
      set.add(path);
      return;
    }
    set.add(path);
  };
  walk(value, [], '');
  return set;
}

/** The value at `path`, or `{ found: false }`. */
export function valueAt(root: unknown, path: FieldPath): { found: boolean; value?: unknown } {
  let node: unknown = root;
  for (const element of path) {
    const located = locate(node, element);
    if (!located) return { found: false };
    node = located.value;
  }
  return { found: true, value: node };
}

function locate(node: unknown, element: string): { value: unknown; remove: () => void } | undefined {
  const kind = element.slice(0, 2);
  const text = element.slice(2);
  if (kind === 'f:') {
    if (!isPlainObject(node) || !(text in node)) return undefined;
    return { value: node[text], remove: () => delete node[text] };
  }
  if (!Array.isArray(node)) return undefined;
  let index = -1;
  if (kind === 'k:') {
    const keys = JSON.parse(text) as JsonObject;
    index = node.findIndex((item) => isPlainObject(item) && Object.entries(keys).every(([k, v]) => isDeepStrictEqual(item[k], v)));
  } else if (kind === 'v:') {
    const wanted: unknown = JSON.parse(text);
    index = node.findIndex((item) => isDeepStrictEqual(item, wanted));
  }
  if (index < 0) return undefined;
  return { value: node[index], remove: () => node.splice(index, 1) };
}

/** Removes the member at `path` from `root` in place; a missing path is not an error. */
export function deleteAt(root: unknown, path: FieldPath): void {
  if (path.length === 0) return;
  const parent = valueAt(root, path.slice(0, -1));
  if (!parent.found) return;
  locate(parent.value, path[path.length - 1] as string)?.remove();
}

/** `.spec.template.spec.containers[name="app"].image`, as Kubernetes prints field paths. */
export function describePath(path: FieldPath): string {
  return path
    .map((element) => {
      const text = element.slice(2);
      if (element.startsWith('f:')) return `.${text}`;
      if (element.startsWith('k:')) {
        const keys = JSON.parse(text) as JsonObject;
        return `[${Object.entries(keys).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}]`;
      }
      return `[=${text}]`;
    })
    .join('');
}

export function toFieldsV1(set: FieldSet): Record<string, unknown> {
  const root: JsonObject = {};
  const members = new Set<JsonObject>();
  for (const path of set.paths()) {
    let node = root;
    for (const element of path) {
      const next = node[element];
      if (isPlainObject(next)) node = next;
      else {
        const created: JsonObject = {};
        node[element] = created;
        node = created;
      }
    }
    members.add(node);
  }
  const finish = (node: JsonObject): JsonObject => {
    const children = Object.keys(node).sort();
    const out: JsonObject = members.has(node) && children.length > 0 ? { '.': {} } : {};
    for (const key of children) out[key] = finish(node[key] as JsonObject);
    return out;
  };
  return finish(root);
}

export function fromFieldsV1(fields: unknown): FieldSet {
  const set = new FieldSet();
  const walk = (node: unknown, path: string[]): void => {
    if (!isPlainObject(node)) return;
    for (const [key, child] of Object.entries(node)) {
      if (key === '.') set.add(path);
      else if (isPlainObject(child) && Object.keys(child).length === 0) set.add([...path, key]);
      else walk(child, [...path, key]);
    }
  };
  walk(fields, []);
  return set;
}
