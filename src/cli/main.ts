/**
 * The `amesh` command line. One file per command family under src/cli/; errors are printed
 * with their cause chain and hint, and exit with status 1 (2 for usage errors).
 */
import { Command, CommanderError } from 'commander';
import { describeError } from '../errors/amesh-error.js';

type Register = (program: Command) => void;

/**
 * Command families, loaded on demand: a pod's built-in image or a node agent should not carry
 * the sandbox's API server and Kubernetes client in memory (each family pulls in its own
 * dependencies). Help and unknown commands load them all.
 */
const FAMILIES: Record<string, () => Promise<Register>> = {
  'node-agent': async () => (await import('./node-agent.js')).registerNodeAgent,
  ca: async () => (await import('./ca.js')).registerCa,
  controller: async () => (await import('./controller.js')).registerController,
  image: async () => (await import('./image.js')).registerImage,
  demo: async () => (await import('./demo.js')).registerDemo,
  sandbox: async () => (await import('./sandbox.js')).registerSandbox,
  waypoint: async () => (await import('./waypoint.js')).registerWaypoint,
  'waypoint-proxy': async () => (await import('./waypoint-proxy.js')).registerWaypointProxy,
  'gateway-proxy': async () => (await import('./gateway-proxy.js')).registerGatewayProxy,
  'ztunnel-config': async () => (await import('./ztunnel-config.js')).registerZtunnelConfig,
  dashboard: async () => (await import('./dashboard.js')).registerDashboard,
  'proxy-status': async () => (await import('./proxy-status.js')).registerProxyStatus,
  diagnose: async () => (await import('./diagnose.js')).registerDiagnose,
  install: async () => (await import('./install.js')).registerInstall,
  uninstall: async () => (await import('./uninstall.js')).registerUninstall,
  precheck: async () => (await import('./precheck.js')).registerPrecheck,
  namespace: async () => (await import('./namespace.js')).registerNamespace,
  version: async () => (await import('./version.js')).registerVersion,
};

const program = new Command();
program.name('amesh').description('amesh: an ambient service mesh with eBPF capture and HBONE mutual TLS').version('0.1.0').exitOverride();
const requested = process.argv[2];
// The sandbox daemon is a family of its own: it must not carry the sandbox CLI's Kubernetes client.
const load =
  requested === 'sandbox' && process.argv[3] === 'daemon'
    ? [async () => (await import('./sandbox-daemon.js')).registerSandboxDaemon]
    : requested !== undefined && Object.hasOwn(FAMILIES, requested)
      ? [FAMILIES[requested]!]
      : Object.values(FAMILIES);
for (const register of await Promise.all(load.map((f) => f()))) register(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  console.error(`amesh: ${describeError(err)}`);
  process.exit(1);
}
