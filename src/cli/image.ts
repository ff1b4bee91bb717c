/**
 * `amesh image <name>`: built-in container images, run as processes inside pod network
 * namespaces by the demo and the sandbox.
 */
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { runHelloApp } from '../sandbox/images/hello-app.js';

export function registerImage(program: Command): void {
  const image = program.command('image').description('built-in container images (used inside sandbox pods)');
  image
    .command('hello-app')
    .description('gcr.io/google-samples/hello-app look-alike: "Hello, world!", version, hostname')
    .option('--port <port>', 'listen port (default: $PORT or 8080)')
    .option('--version-string <v>', 'version to report', '1.0.0')
    .option('--hostname <name>', 'hostname to report (default: $HOSTNAME or the host name)')
    .action(async (o: { port?: string; versionString: string; hostname?: string }) => {
      const port = Number(o.port ?? process.env.PORT ?? 8080);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port ${o.port}: expected 1-65535`);
      await runHelloApp({ port, version: o.versionString, hostname: o.hostname ?? process.env.HOSTNAME ?? hostname() });
    });
}
