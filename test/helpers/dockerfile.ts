/**
 * A small Dockerfile reader for test/unit/dockerfiles.test.ts: instructions with continuation
 * lines joined and comments dropped, grouped into build stages, with global `ARG` defaults
 * substituted into `FROM`. Enough to assert the facts the images rely on; the syntax check itself
 * is dockerfile-utils' validator (the same library VS Code's Docker extension uses). Written by
 * hand because dockerfile-ast's model is positional (ranges into the text) and the facts below
 * need only keywords, flags and arguments.
 * Reference: https://docs.docker.com/reference/dockerfile/
 */

export interface Instruction {
  keyword: string;
  /** The text after the keyword, continuation lines joined with a space. */
  args: string;
  /** 1-based line of the keyword. */
  line: number;
}

export interface CopyInstruction {
  flags: Record<string, string>;
  sources: string[];
  destination: string;
  line: number;
}

export interface Stage {
  /** `FROM` image with global ARG defaults substituted. */
  base: string;
  name: string | undefined;
  instructions: Instruction[];
}

export interface Dockerfile {
  globalArgs: Record<string, string>;
  stages: Stage[];
}

export function parseInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!.trim();
    if (!first || first.startsWith('#')) continue;
    const start = i + 1;
    let joined = first;
    // A trailing backslash continues the instruction; comment lines inside it are skipped.
    while (joined.endsWith('\\') && i + 1 < lines.length) {
      joined = joined.slice(0, -1).trimEnd();
      i++;
      const next = lines[i]!.trim();
      if (next.startsWith('#')) {
        joined += ' \\';
        continue;
      }
      joined += ` ${next}`;
    }
    const m = /^(\S+)\s*(.*)$/s.exec(joined);
    if (m) out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
  }
  return out;
}

/** `${NAME}` / `$NAME` / `${NAME:-default}` with the given values. */
export function substitute(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)/g, (whole, braced: string | undefined, fallback: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare ?? '';
    return vars[name] ?? fallback ?? whole;
  });
}

function parseArg(args: string): [string, string] {
  const eq = args.indexOf('=');
  return eq < 0 ? [args, ''] : [args.slice(0, eq), args.slice(eq + 1).replace(/^"(.*)"$/, '$1')];
}

export function parseDockerfile(text: string): Dockerfile {
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of parseInstructions(text)) {
    if (ins.keyword === 'FROM') {
      const words = ins.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      const asAt = words.findIndex((w) => w.toUpperCase() === 'AS');
      stages.push({ base: substitute(words[0] ?? '', globalArgs), name: asAt >= 0 ? words[asAt + 1] : undefined, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword === 'ARG') {
        const [k, v] = parseArg(ins.args);
        globalArgs[k] = v;
      }
    } else stages[stages.length - 1]!.instructions.push(ins);
  }
  return { globalArgs, stages };
}

/** COPY / ADD: `--flag=value`s, then the JSON or whitespace form; the last path is the destination. */
export function parseCopy(ins: Instruction): CopyInstruction {
  let rest = ins.args;
  const flags: Record<string, string> = {};
  for (;;) {
    const m = /^--([\w-]+)(?:=(\S*))?\s+/.exec(rest);
    if (!m) break;
    flags[m[1]!] = m[2] ?? 'true';
    rest = rest.slice(m[0].length);
  }
  const paths = rest.startsWith('[') ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
  if (paths.length < 2) throw new Error(`line ${ins.line}: ${ins.keyword} needs a source and a destination`);
  return { flags, sources: paths.slice(0, -1), destination: paths[paths.length - 1]!, line: ins.line };
}

/** ENTRYPOINT / CMD in exec (JSON) form; throws on the shell form, which loses signals. */
export function execForm(ins: Instruction): string[] {
  const parsed = JSON.parse(ins.args) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) throw new Error(`line ${ins.line}: ${ins.keyword} is not a JSON array of strings`);
  return parsed as string[];
}

/** The stage's working directory after all its WORKDIRs (absolute; `/` when none). */
export function workdirOf(stage: Stage): string {
  let dir = '/';
  for (const ins of stage.instructions) if (ins.keyword === 'WORKDIR') dir = ins.args.startsWith('/') ? ins.args : `${dir.replace(/\/$/, '')}/${ins.args}`;
  return dir;
}

/** Whether a context path is excluded by .dockerignore patterns (the subset used here: names, globs with * and **, no `!`). */
export function isIgnored(path: string, patterns: readonly string[]): boolean {
  const clean = path.replace(/^\.\//, '').replace(/\/$/, '');
  return patterns.some((pattern) => {
    const source = pattern
      .replace(/^\//, '')
      .split('/')
      .map((part) => (part === '**' ? '(?:[^/]+/)*' : `${part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}/`))
      .join('')
      .replace(/\/$/, '');
    // A pattern matching a directory excludes everything below it.
    return new RegExp(`^${source}(?:/.*)?$`).test(clean);
  });
}

export function readIgnorePatterns(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}
