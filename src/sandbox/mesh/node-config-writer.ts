/**
 * Keeps one local-config file per node up to date with the API server's Namespaces, Pods and
 * Services (see render-node-config.ts). Writes are atomic (temp file + rename) and happen only
 * when the rendered content changes, so the agents' file poll reloads exactly once per real
 * change. A burst of watch events becomes one render after DEBOUNCE_MS.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { stringify } from 'yaml';
import type { ClusterStore } from '../apiserver/types.js';
import { renderNodeConfig, type NodeConfigOptions } from './render-node-config.js';

/** Batches a burst of changes (a Deployment's pods starting) into one write per node. */
const DEBOUNCE_MS = 50;

export interface NodeConfigWriterOptions {
  store: ClusterStore;
  log: Logger;
  /** Where each node's file goes: `<dir>/<node>.yaml`. */
  dir: string;
  nodes: Array<Omit<NodeConfigOptions, 'node'> & { node: string }>;
}

export interface NodeConfigWriter {
  /** Render and write now (also called on every change). */
  flush(): Promise<void>;
  /** The file a node's agent reads. */
  pathFor(node: string): string;
  stop(options?: { removeFiles?: boolean }): Promise<void>;
}

export async function startNodeConfigWriter(options: NodeConfigWriterOptions): Promise<NodeConfigWriter> {
  const { store, log, dir } = options;
  const pathFor = (node: string): string => join(dir, `${node}.yaml`);
  const written = new Map<string, string>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const writeAll = async (): Promise<void> => {
    const view = {
      namespaces: store.list('v1', 'Namespace').items,
      pods: store.list('v1', 'Pod').items,
      services: store.list('v1', 'Service').items,
      authorizationPolicies: store.list('security.istio.io/v1', 'AuthorizationPolicy').items,
      peerAuthentications: store.list('security.istio.io/v1', 'PeerAuthentication').items,
    };
    for (const nodeOptions of options.nodes) {
      const text = stringify(renderNodeConfig(view, nodeOptions));
      if (written.get(nodeOptions.node) === text) continue;
      const path = pathFor(nodeOptions.node);
      await mkdir(dirname(path), { recursive: true });
      const tmp = `${path}.tmp-${process.pid}`;
      await writeFile(tmp, text, { mode: 0o644 });
      await rename(tmp, path);
      written.set(nodeOptions.node, text);
      log.debug({ node: nodeOptions.node, path }, 'mesh config written');
    }
  };
  const flush = (): Promise<void> => {
    running = running.then(writeAll).catch((err: unknown) => log.warn({ err }, 'could not write the node mesh config; will retry on the next change'));
    return running;
  };
  const schedule = (): void => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      void flush();
    }, DEBOUNCE_MS);
  };

  const stops = [
    store.watch('v1', 'Namespace', {}, schedule),
    store.watch('v1', 'Pod', {}, schedule),
    store.watch('v1', 'Service', {}, schedule),
    store.watch('security.istio.io/v1', 'AuthorizationPolicy', {}, schedule),
    store.watch('security.istio.io/v1', 'PeerAuthentication', {}, schedule),
  ];
  await flush();
  return {
    flush,
    pathFor,
    async stop(stopOptions = {}) {
      for (const stop of stops) stop();
      if (timer) clearTimeout(timer);
      timer = undefined;
      await running;
      if (stopOptions.removeFiles) {
        for (const n of options.nodes) await rm(pathFor(n.node), { force: true });
      }
    },
  };
}
