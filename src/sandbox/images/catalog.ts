/**
 * The sandbox's image "registry": container image references mapped onto programs that run on
 * this host inside the pod's network namespace. Nothing is pulled; an image that is not listed
 * here makes the container wait with ErrImagePull and the message from `resolveImage`.
 *
 * Kubernetes' command semantics are kept (https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/):
 * `command` replaces the image's ENTRYPOINT, `args` replaces its CMD.
 */
import { hostTools, type HostTools } from './host-tools.js';
import { nginxConfig, nginxIndexPage } from './nginx-config.js';
import { nodeAgentNodeFlags } from '../../config/runtime-flags.js';

export interface ImageReference {
  /** Repository without the implicit `docker.io/` and `library/`, e.g. `nginx`, `gcr.io/google-samples/hello-app`. */
  name: string;
  /** `latest` when the reference has none. */
  tag: string;
}

export interface ImagePlan {
  image: string;
  reference: ImageReference;
  /** Reported as `containerStatuses[].imageID`. */
  imageId: string;
  /** ENTRYPOINT; `{containerDir}` is replaced by the container's private directory. */
  entrypoint: string[];
  /** CMD. */
  cmd: string[];
  /** Programs named in `command` run through host busybox (its applets) or straight from the host. */
  commandRunner: 'busybox' | 'host';
  /** The image needs nginx's generated configuration in its directory. */
  nginx?: boolean;
}

export interface ContainerCommandSpec {
  command?: string[];
  args?: string[];
  ports?: Array<{ containerPort?: number }>;
}

export interface ContainerLaunch {
  argv: string[];
  /** Files to write before starting, relative to the container's directory. */
  files: Array<{ path: string; content: string }>;
}

export const CONTAINER_DIR_TOKEN = '{containerDir}';

const HELLO_APP_NAMES = ['gcr.io/google-samples/hello-app', 'us-docker.pkg.dev/google-samples/containers/gke/hello-app'];
const HELLO_APP_VERSIONS: Record<string, string> = { '1.0': '1.0.0', '2.0': '2.0.0' };
const SHELL_IMAGES = ['busybox', 'alpine'];
const AMESH_PROGRAMS: Record<string, string | undefined> = { 'node-agent': 'node-agent', controller: 'controller', waypoint: 'waypoint-proxy', gateway: 'gateway-proxy' };

/** What `kubectl describe` shows for an unknown image, listing what is available. */
export const BUILT_IN_IMAGES = [
  'hashicorp/http-echo',
  'mccutchen/go-httpbin',
  'kennethreitz/httpbin',
  'gcr.io/google-samples/hello-app:1.0|2.0',
  'us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0|2.0',
  'curlimages/curl',
  'busybox',
  'alpine',
  'nginx',
  'amesh/node-agent',
  'amesh/controller',
  'amesh/waypoint',
  'amesh/gateway',
  'amesh/flaky',
  'amesh/otlp-receiver',
];

export function parseImageReference(image: string): ImageReference {
  let rest = image.trim();
  const at = rest.indexOf('@');
  if (at >= 0) rest = rest.slice(0, at);
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  let tag = 'latest';
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  rest = rest.replace(/^(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)\//, '').replace(/^library\//, '');
  return { name: rest, tag };
}

function plan(image: string, reference: ImageReference, fields: Omit<ImagePlan, 'image' | 'reference' | 'imageId' | 'commandRunner'> & { commandRunner?: ImagePlan['commandRunner'] }): ImagePlan {
  return { image, reference, imageId: `amesh-sandbox://${reference.name}:${reference.tag}`, commandRunner: 'host', ...fields };
}

/** Maps an image reference to the program that stands in for it, or says why it cannot. */
export function resolveImage(image: string, host: HostTools = hostTools()): ImagePlan | { error: string } {
  const reference = parseImageReference(image);
  const { name, tag } = reference;
  const amesh = [host.node, host.amesh];
  if (name === 'hashicorp/http-echo') return plan(image, reference, { entrypoint: [...amesh, 'image', 'http-echo'], cmd: [] });
  // go-httpbin listens on 8080, the original httpbin on 80.
  if (name === 'mccutchen/go-httpbin') return plan(image, reference, { entrypoint: [...amesh, 'image', 'httpbin', '--port', '8080'], cmd: [] });
  if (name === 'kennethreitz/httpbin') return plan(image, reference, { entrypoint: [...amesh, 'image', 'httpbin', '--port', '80'], cmd: [] });
  if (HELLO_APP_NAMES.includes(name)) {
    const version = HELLO_APP_VERSIONS[tag];
    if (!version) return { error: `image "${image}": unknown tag "${tag}" of hello-app; the amesh sandbox has ${Object.keys(HELLO_APP_VERSIONS).join(' and ')}` };
    return plan(image, reference, { entrypoint: [...amesh, 'image', 'hello-app', '--version-string', version], cmd: [] });
  }
  if (name === 'curlimages/curl') return plan(image, reference, { entrypoint: ['curl'], cmd: [] });
  if (SHELL_IMAGES.includes(name)) {
    return plan(image, reference, { entrypoint: ['sh'], cmd: [], commandRunner: name === 'busybox' && host.busybox ? 'busybox' : 'host' });
  }
  if (name === 'nginx') {
    if (!host.nginx) return { error: `image "${image}" runs the host's nginx, which is not installed: run scripts/setup.sh (or apt-get install nginx-light) and recreate the pod` };
    return plan(image, reference, {
      entrypoint: [host.nginx, '-p', `${CONTAINER_DIR_TOKEN}/`, '-c', `${CONTAINER_DIR_TOKEN}/nginx.conf`, '-e', 'stderr'],
      cmd: [],
      nginx: true,
    });
  }
  const own = /^(?:ghcr\.io\/)?amesh\/(.+)$/.exec(name);
  // amesh's own sample app for the resilience walkthroughs (src/sandbox/images/flaky.ts).
  if (own?.[1] === 'flaky') return plan(image, reference, { entrypoint: [...amesh, 'image', 'flaky'], cmd: [] });
  // A minimal OTLP/HTTP trace collector printing spans to stdout (src/sandbox/images/otlp-receiver.ts).
  if (own?.[1] === 'otlp-receiver') return plan(image, reference, { entrypoint: [...amesh, 'image', 'otlp-receiver'], cmd: [] });
  if (own?.[1] && own[1] in AMESH_PROGRAMS) {
    const program = AMESH_PROGRAMS[own[1]];
    if (!program) return { error: `image "${image}": amesh's ${own[1]} program is not built yet` };
    // As the real image's ENTRYPOINT: node's own flags for that program (and that node) come first.
    const nodeFlags = program === 'node-agent' ? nodeAgentNodeFlags(host.nodeVersion) : [];
    return plan(image, reference, { entrypoint: [host.node, ...nodeFlags, host.amesh], cmd: [program] });
  }
  return { error: `image "${image}" is not available in the amesh sandbox; built-in images: ${BUILT_IN_IMAGES.join(', ')}` };
}

function base(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The argv (and generated files) for one container of `plan`, with Kubernetes' command/args rules. */
export function containerLaunch(p: ImagePlan, container: ContainerCommandSpec, containerDir: string, host: HostTools = hostTools()): ContainerLaunch {
  const files: ContainerLaunch['files'] = [];
  let argv: string[];
  if (container.command && container.command.length > 0) {
    const [program = '', ...rest] = container.command;
    // A busybox image has no /bin/sleep of its own: every program is one of busybox's applets.
    argv = p.commandRunner === 'busybox' && host.busybox ? [host.busybox, base(program), ...rest] : [program, ...rest];
    argv.push(...(container.args ?? []));
  } else {
    argv = [...p.entrypoint, ...(container.args ?? p.cmd)];
    if (p.commandRunner === 'busybox' && host.busybox && argv[0] && !argv[0].startsWith('/')) argv.unshift(host.busybox);
  }
  if (p.nginx) {
    const port = container.ports?.find((x) => x.containerPort)?.containerPort ?? 80;
    files.push({ path: 'nginx.conf', content: nginxConfig({ prefix: containerDir, port }) });
    files.push({ path: 'html/index.html', content: nginxIndexPage() });
    // nginx creates its temp directories but not their parent.
    files.push({ path: 'tmp/.keep', content: '' });
  }
  return { argv: argv.map((a) => a.split(CONTAINER_DIR_TOKEN).join(containerDir)), files };
}
