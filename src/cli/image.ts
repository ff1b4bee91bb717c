/**
 * `amesh image <name>`: built-in container images, run as processes inside pod network
 * namespaces by the demo and the sandbox (src/sandbox/images/catalog.ts maps image references
 * onto these commands).
 */
import type http from 'node:http';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { parseFlakyOptions, runFlaky } from '../sandbox/images/flaky.js';
import { runHelloApp } from '../sandbox/images/hello-app.js';
import { parseHttpEchoArgs, runHttpEcho } from '../sandbox/images/http-echo.js';
import { runHttpbin } from '../sandbox/images/httpbin.js';
import { OTLP_HTTP_PORT, runOtlpReceiver } from '../sandbox/images/otlp-receiver.js';

/** Containers get SIGTERM first: close the listener and exit 0 like the real images do. */
function exitOnTerm(server: http.Server): void {
  const stop = (): void => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

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
      exitOnTerm(await runHelloApp({ port, version: o.versionString, hostname: o.hostname ?? process.env.HOSTNAME ?? hostname() }));
    });
  image
    .command('httpbin')
    .description('httpbin look-alike: /get, /anything, /headers, /status/<codes>, /delay/<s>, /bytes/<n>')
    .option('--port <port>', 'listen port (default: $PORT or 8080)')
    .option('--version-string <v>', 'extra `version` field in JSON answers')
    .action(async (o: { port?: string; versionString?: string }) => {
      const port = Number(o.port ?? process.env.PORT ?? 8080);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port ${o.port}: expected 1-65535`);
      exitOnTerm(await runHttpbin({ port, hostname: process.env.HOSTNAME ?? hostname(), ...(o.versionString ? { version: o.versionString } : {}) }));
    });
  image
    .command('flaky')
    .description('amesh/flaky, our sample app: every Nth request fails (503 by default); /healthz always answers 200')
    .option('--port <port>', 'listen port (default: $PORT or 8080)')
    .option('--fail-every <n>', 'every Nth request fails; 1 = all, 0 = none', '2')
    .option('--status <code>', 'status of the failing requests', '503')
    .option('--version-string <v>', 'version to report', '2.0.0')
    .option('--hostname <name>', 'hostname to report (default: $HOSTNAME or the host name)')
    .action(async (o: { port?: string; failEvery: string; status: string; versionString: string; hostname?: string }) => {
      const parsed = parseFlakyOptions({ ...o, port: o.port ?? process.env.PORT, hostname: o.hostname ?? process.env.HOSTNAME ?? hostname() });
      if ('error' in parsed) throw new Error(parsed.error);
      exitOnTerm(await runFlaky(parsed));
    });
  image
    .command('otlp-receiver')
    .description('amesh/otlp-receiver: OTLP/HTTP traces on POST /v1/traces (JSON or protobuf), one JSON line per span on stdout, GET /spans')
    .option('--port <port>', `listen port (default: $PORT or ${OTLP_HTTP_PORT})`)
    .action(async (o: { port?: string }) => {
      const port = Number(o.port ?? process.env.PORT ?? OTLP_HTTP_PORT);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port ${o.port}: expected 1-65535`);
      exitOnTerm((await runOtlpReceiver({ port })).server);
    });
  image
    .command('http-echo')
    .description('hashicorp/http-echo look-alike: -text=<s> (required), -listen=:5678, -status-code=200')
    // http-echo's Go-style single-dash flags are not commander options: parse them ourselves.
    .helpOption(false)
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .argument('[flags...]')
    .action(async (flags: string[]) => {
      const parsed = parseHttpEchoArgs(flags);
      if ('error' in parsed) {
        console.error(parsed.error);
        process.exit(127);
      }
      exitOnTerm(await runHttpEcho(parsed));
    });
}
