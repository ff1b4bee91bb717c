import { describe, expect, it } from 'vitest';
import { BUILT_IN_IMAGES, containerLaunch, parseImageReference, resolveImage, type ImagePlan } from '../../src/sandbox/images/catalog.js';
import type { HostTools } from '../../src/sandbox/images/host-tools.js';
import { parseHttpEchoArgs } from '../../src/sandbox/images/http-echo.js';
import { nginxConfig } from '../../src/sandbox/images/nginx-config.js';

const host: HostTools = { node: '/usr/bin/node', nodeVersion: '24.11.1', amesh: '/repo/bin/amesh.js', nginx: '/usr/sbin/nginx' };
const bare: HostTools = { node: '/usr/bin/node', nodeVersion: '24.11.1', amesh: '/repo/bin/amesh.js' };

function plan(image: string, tools: HostTools = host): ImagePlan {
  const p = resolveImage(image, tools);
  if ('error' in p) throw new Error(p.error);
  return p;
}

describe('image references', () => {
  it.each([
    ['nginx', { name: 'nginx', tag: 'latest' }],
    ['docker.io/library/nginx:1.27', { name: 'nginx', tag: '1.27' }],
    ['localhost:5000/app', { name: 'localhost:5000/app', tag: 'latest' }],
    ['gcr.io/google-samples/hello-app:2.0@sha256:abc', { name: 'gcr.io/google-samples/hello-app', tag: '2.0' }],
  ])('%s', (image, expected) => expect(parseImageReference(image)).toEqual(expected));
});

describe('resolveImage', () => {
  it('maps hello-app tags to the built-in program with the right version', () => {
    expect(containerLaunch(plan('gcr.io/google-samples/hello-app:2.0'), {}, '/c', host).argv).toEqual(['/usr/bin/node', '/repo/bin/amesh.js', 'image', 'hello-app', '--version-string', '2.0.0']);
    expect(plan('us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0').entrypoint).toContain('1.0.0');
    expect(resolveImage('gcr.io/google-samples/hello-app:3.0', host)).toEqual({ error: expect.stringContaining('unknown tag "3.0"') });
  });

  it('runs httpbin on go-httpbin’s port 8080 and the original’s port 80', () => {
    expect(containerLaunch(plan('mccutchen/go-httpbin'), {}, '/c', host).argv).toEqual(['/usr/bin/node', '/repo/bin/amesh.js', 'image', 'httpbin', '--port', '8080']);
    expect(containerLaunch(plan('kennethreitz/httpbin:latest'), {}, '/c', host).argv).toEqual(['/usr/bin/node', '/repo/bin/amesh.js', 'image', 'httpbin', '--port', '80']);
  });

  it('passes http-echo args after the built-in entrypoint', () => {
    expect(containerLaunch(plan('hashicorp/http-echo:1.0'), { args: ['-text=hi'] }, '/c', host).argv).toEqual(['/usr/bin/node', '/repo/bin/amesh.js', 'image', 'http-echo', '-text=hi']);
  });

  it('honours command and args for client images (command replaces the entrypoint)', () => {
    expect(containerLaunch(plan('curlimages/curl:8.10.1'), { command: ['sleep', 'infinity'] }, '/c', host).argv).toEqual(['sleep', 'infinity']);
    expect(containerLaunch(plan('curlimages/curl'), { args: ['-s', 'http://x'] }, '/c', host).argv).toEqual(['curl', '-s', 'http://x']);
    expect(containerLaunch(plan('alpine:3.20'), { command: ['sh', '-c', 'echo hi'] }, '/c', host).argv).toEqual(['sh', '-c', 'echo hi']);
  });

  it('runs busybox commands as busybox applets when busybox is installed', () => {
    const withBusybox = { ...host, busybox: '/bin/busybox' };
    expect(containerLaunch(plan('busybox:1.36', withBusybox), { command: ['/bin/sleep', '3600'] }, '/c', withBusybox).argv).toEqual(['/bin/busybox', 'sleep', '3600']);
    expect(containerLaunch(plan('busybox', bare), { command: ['sleep', '3600'] }, '/c', bare).argv).toEqual(['sleep', '3600']);
  });

  it('runs the host nginx with a generated config, or explains that nginx is missing', () => {
    const launch = containerLaunch(plan('nginx:1.27'), { ports: [{ containerPort: 8081 }] }, '/pods/u/containers/web', host);
    expect(launch.argv).toEqual(['/usr/sbin/nginx', '-p', '/pods/u/containers/web/', '-c', '/pods/u/containers/web/nginx.conf', '-e', 'stderr']);
    expect(launch.files.find((f) => f.path === 'nginx.conf')?.content).toContain('listen 8081 default_server;');
    expect(resolveImage('nginx', bare)).toEqual({ error: expect.stringContaining('not installed') });
  });

  it("maps amesh's own images", () => {
    // The node agent's image starts node with the agent's own flags, as images/node/Dockerfile does,
    // and only those chosen for the host's node (Node 20 refuses two of Node 24's at start and does
    // not need the third).
    expect(containerLaunch(plan('ghcr.io/amesh/node-agent:0.1.0'), { args: ['node-agent', '--local-config', '/x.yaml'] }, '/c', host).argv).toEqual([
      '/usr/bin/node',
      '--single-threaded-gc',
      '--max-semi-space-size=16',
      '--external-memory-accounted-in-global-limit',
      '--heap-growing-percent=100',
      '--no-async-context-frame',
      '/repo/bin/amesh.js',
      'node-agent',
      '--local-config',
      '/x.yaml',
    ]);
    const node20: HostTools = { ...host, nodeVersion: '20.19.0' };
    expect(containerLaunch(plan('amesh/node-agent', node20), { args: ['node-agent'] }, '/c', node20).argv).toEqual([
      '/usr/bin/node',
      '--single-threaded-gc',
      '--max-semi-space-size=16',
      '/repo/bin/amesh.js',
      'node-agent',
    ]);
    expect(containerLaunch(plan('amesh/controller:0.1.0'), {}, '/c', host).argv).toEqual(['/usr/bin/node', '/repo/bin/amesh.js', 'controller']);
    expect(resolveImage('amesh/unknown-program:0.1.0', host)).toEqual({ error: expect.stringContaining('not available') });
  });

  it('runs the waypoint image as `amesh waypoint-proxy`, with or without the Deployment’s args', () => {
    // The waypoint Deployment (issue #6) sets args ["waypoint-proxy"].
    expect(containerLaunch(plan('amesh/waypoint:0.1.0'), { args: ['waypoint-proxy'] }, '/c', host).argv).toEqual(['/usr/bin/node', '/repo/bin/amesh.js', 'waypoint-proxy']);
    expect(containerLaunch(plan('ghcr.io/amesh/waypoint'), {}, '/c', host).argv).toEqual(['/usr/bin/node', '/repo/bin/amesh.js', 'waypoint-proxy']);
    expect(BUILT_IN_IMAGES).toContain('amesh/waypoint');
  });

  it('rejects unknown images with the list of built-in ones', () => {
    const r = resolveImage('example.com/nope:1', host);
    expect(r).toEqual({ error: expect.stringMatching(/^image "example.com\/nope:1" is not available in the amesh sandbox; built-in images: .*hashicorp\/http-echo/) });
  });
});

describe('http-echo flags', () => {
  it.each([
    [['-text=hello world'], { text: 'hello world', host: '', port: 5678, statusCode: 200 }],
    [['--text', 'x', '-listen=127.0.0.1:8080', '-status-code=503'], { text: 'x', host: '127.0.0.1', port: 8080, statusCode: 503 }],
  ])('%j', (argv, expected) => expect(parseHttpEchoArgs(argv)).toEqual(expected));

  it.each([[[]], [['-listen=:80']], [['-bogus=1', '-text=a']], [['-text=a', '-status-code=9']]])('rejects %j', (argv) => {
    expect(parseHttpEchoArgs(argv)).toHaveProperty('error');
  });
});

describe('nginx config', () => {
  it('keeps everything nginx writes inside the container directory, in the foreground', () => {
    const conf = nginxConfig({ prefix: '/p', port: 80 });
    expect(conf).toContain('daemon off;');
    expect(conf).toContain('pid /p/nginx.pid;');
    expect(conf).toContain('error_log stderr');
    expect(conf).not.toMatch(/\/var\/(log|run)/);
  });
});
