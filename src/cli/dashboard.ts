/**
 * `amesh dashboard [--port 15030] [--address 127.0.0.1] [--interval 5s] [--metrics-url URL]…
 * [--kubeconfig PATH | --dir SANDBOX] [--no-discovery] [--open]`: a local web page with the live
 * service graph, golden signals per service and the mesh state per namespace (src/dashboard/).
 *
 * Targets come from Kubernetes (node agents and waypoint/gateway pods, reached through PodHttp:
 * inside the pod's network namespace in the sandbox, port-forward on a real cluster) plus any
 * `--metrics-url`. Without a reachable cluster the dashboard still runs on the URLs given, and
 * says so; with neither it fails with a hint. Listens on 127.0.0.1 by default: the page shows
 * the mesh's topology and policy names, which are not for everyone on the network.
 */
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { AmeshError, describeError } from '../errors/amesh-error.js';
import type { DashboardOptions } from '../dashboard/dashboard-app.js';
import { parseDurationSeconds } from './ca.js';

export const DEFAULT_DASHBOARD_PORT = 15030;

export interface DashboardFlags {
  port?: string;
  address?: string;
  interval?: string;
  metricsUrl?: string[];
  kubeconfig?: string;
  dir?: string;
  discovery?: boolean;
  open?: boolean;
}

/** Flags → options without the Kubernetes part (pure). */
export function dashboardOptions(flags: DashboardFlags): Omit<DashboardOptions, 'kube'> & { discovery: boolean; open: boolean } {
  const port = Number(flags.port ?? DEFAULT_DASHBOARD_PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new AmeshError('AMESH_CONFIG_INVALID', `--port ${flags.port}: expected 0-65535`);
  const seconds = parseDurationSeconds(flags.interval ?? '5s');
  if (seconds === undefined || seconds < 1) throw new AmeshError('AMESH_CONFIG_INVALID', `--interval ${flags.interval}: expected a duration of at least 1s, like 5s or 1m`);
  return {
    port,
    address: flags.address ?? '127.0.0.1',
    intervalMs: seconds * 1000,
    metricsUrls: flags.metricsUrl ?? [],
    discovery: flags.discovery !== false,
    open: flags.open === true,
  };
}

function openBrowser(url: string): void {
  const command = process.platform === 'darwin' ? 'open' : 'xdg-open';
  const child = spawn(command, [url], { stdio: 'ignore', detached: true });
  child.on('error', () => console.error(`amesh dashboard: could not start ${command}; open ${url} yourself`));
  child.unref();
}

export function registerDashboard(program: Command): void {
  program
    .command('dashboard')
    .description('serve a local web page: live service graph from the proxies’ metrics, golden signals per service, enrolment/waypoints/policies per namespace')
    .option('--port <port>', `port to listen on (0: any free port)`, String(DEFAULT_DASHBOARD_PORT))
    .option('--address <address>', 'address to listen on', '127.0.0.1')
    .option('--interval <duration>', 'scrape interval', '5s')
    .option('--metrics-url <[ns/workload=]url>', 'also scrape this Prometheus endpoint (repeatable); naming the workload marks a waypoint as one', (value: string, previous: string[] = []) => [...previous, value])
    .option('--kubeconfig <path>', 'kubeconfig to use (default: in-cluster, $KUBECONFIG, ~/.kube/config, else the running sandbox)')
    .option('--dir <dir>', 'sandbox state directory (default $AMESH_SANDBOX_DIR or /var/lib/amesh/sandbox)')
    .option('--no-discovery', 'do not use the Kubernetes API (only --metrics-url targets, no namespace state)')
    .option('--open', 'open the page in the default browser')
    .action(async (flags: DashboardFlags) => {
      const o = dashboardOptions(flags);
      const { startDashboard } = await import('../dashboard/dashboard-app.js');
      const { parseMetricsUrl } = await import('../dashboard/scraper.js');
      for (const spec of o.metricsUrls) parseMetricsUrl(spec); // fail before connecting to anything
      let kube: DashboardOptions['kube'];
      if (o.discovery) {
        try {
          const { openClusterAccess } = await import('./inspect/cluster-access.js');
          const access = await openClusterAccess({ ...(flags.kubeconfig !== undefined ? { kubeconfig: flags.kubeconfig } : {}), ...(flags.dir !== undefined ? { dir: flags.dir } : {}) });
          kube = { kubeConfig: access.kubeConfig, podHttp: access.podHttp };
          console.log(`amesh dashboard: ${access.sandboxDir ? `sandbox ${access.sandboxDir}` : `cluster ${access.kubeConfig.getCurrentCluster()?.server ?? '?'}`}`);
        } catch (err) {
          if (o.metricsUrls.length === 0) {
            throw new AmeshError('AMESH_COMMAND_FAILED', `dashboard: no Kubernetes cluster to discover proxies in: ${describeError(err)}`, {
              cause: err,
              hint: 'start one (`amesh sandbox up`), pass --kubeconfig / --dir, or give --metrics-url targets',
            });
          }
          console.error(`amesh dashboard: no Kubernetes cluster (${describeError(err).split('\n')[0]}); scraping only the --metrics-url targets`);
        }
      }
      const dashboard = await startDashboard({ ...o, ...(kube ? { kube } : {}), log: (line) => console.error(line) });
      console.log(`amesh dashboard: ${dashboard.url}  (scraping every ${o.intervalMs / 1000} s; Ctrl-C to stop)`);
      if (o.open) openBrowser(dashboard.url);
      let stopping = false;
      const stop = (): void => {
        if (stopping) return;
        stopping = true;
        const hard = setTimeout(() => process.exit(1), 5_000);
        hard.unref();
        dashboard.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
}
