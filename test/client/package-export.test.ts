import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startInProcess } from "../support/in-process.ts";
import { tempDir } from "../support/temp-dir.ts";
import { simAsk } from "./support/follow-record.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DIST = join(ROOT, "dist");
const BUNDLE = join(DIST, "client", "index.js");
const TSC = join(ROOT, "node_modules", "typescript", "bin", "tsc");

/** What an application on Node writes: the package by name, no loader, no TypeScript. */
const FOLLOW_MJS = `
import { createClient } from "lifeline/client";

const [baseUrl, request] = [process.argv[2], JSON.parse(process.argv[3])];
const client = createClient({ baseUrl });
const { id } = await client.start(request);
const follow = client.follow(id);
let entries = 0;
for await (const event of follow) if (event.type === "entry") entries += 1;
const { status, text } = await follow.done;
process.stdout.write(JSON.stringify({ resolved: import.meta.resolve("lifeline/client"), entries, status, text }));
`;

/** A TypeScript application that leans on the declarations: every name must resolve to a real type. */
const USES_TS = `
import { createClient, LifelineClientError, type Entry, type FinalAnswer, type FollowEvent, type GenerationRequest, type LifelineClient } from "lifeline/client";

const client: LifelineClient = createClient({ baseUrl: "http://127.0.0.1:8787", transports: ["sse"], reconnect: { initialMs: 100, maxMs: 1000 } });
const request: GenerationRequest = { model: "sim", messages: [{ role: "user", content: "Hi" }], max_tokens: 40 };

export async function ask(): Promise<FinalAnswer> {
  const { id } = await client.start(request);
  const follow = client.follow(id);
  for await (const event of follow) console.log(describe(event));
  return follow.done;
}

function describe(event: FollowEvent): string {
  switch (event.type) {
    case "entry":
      return \`\${offsetOf(event.entry)} \${event.text}\`;
    case "reset":
      return "reset";
    case "state":
      return event.state;
    default:
      return unreachable(event);
  }
}

const offsetOf = (entry: Entry): number => entry.offset;
const unreachable = (value: never): never => {
  throw new Error(String(value));
};
export const codeOf = (error: unknown): string | undefined => (error instanceof LifelineClientError ? error.code : undefined);
`;

/** The check must be able to fail: `max_tokens` is a number in src/core/entries.ts. */
const BROKEN_TS = `import type { GenerationRequest } from "lifeline/client";
export const request: GenerationRequest = { model: "sim", messages: [], max_tokens: "forty" };
`;

const CONSUMER_TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    lib: ["ES2022", "DOM"],
    types: [],
    strict: true,
    noEmit: true,
    skipLibCheck: false, // the package's declarations are checked too
  },
  files: ["uses.ts", "broken.ts"],
};

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(file: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<Ran> {
  return new Promise((done) => {
    execFile(file, args, { cwd, env, timeout: 30_000 }, (error, stdout, stderr) => {
      done({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr });
    });
  });
}

/** The environment without vitest's loaders: the child is plain `node`. */
function plainNodeEnv(): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _loaders, ...env } = process.env;
  return env;
}

function declarationsUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((name) => name.endsWith(".d.ts"))
    .map((name) => join(dir, name));
}

type Node = Awaited<ReturnType<typeof startInProcess>>;
let node: Node;
let consumer: ReturnType<typeof tempDir>;

beforeAll(async () => {
  // The test builds what it checks, as `npm pack` would (prepack): never a stale or missing dist/.
  const built = await run("npm", ["run", "--silent", "build"], ROOT);
  if (built.code !== 0) throw new Error(`npm run build failed:\n${built.stdout}${built.stderr}`);

  consumer = tempDir("lifeline-consumer-");
  mkdirSync(join(consumer.path, "node_modules"));
  symlinkSync(ROOT, join(consumer.path, "node_modules", "lifeline"), "dir");
  writeFileSync(join(consumer.path, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  node = await startInProcess();
});

afterAll(async () => {
  await node?.stop();
  consumer?.remove();
});

describe("the lifeline/client package export", () => {
  it("a plain node process imports lifeline/client from dist and follows an answer to the exact text", async () => {
    const { request, expected } = simAsk("from the package export", 60);
    writeFileSync(join(consumer.path, "follow.mjs"), FOLLOW_MJS);

    const ran = await run(process.execPath, ["follow.mjs", node.url, JSON.stringify(request)], consumer.path, plainNodeEnv());

    expect(ran.stderr).toBe("");
    expect(ran.code).toBe(0);
    const result = JSON.parse(ran.stdout) as { resolved: string; entries: number; status: string; text: string };
    expect(result.resolved).toBe(pathToFileURL(BUNDLE).href);
    expect(result.status).toBe("completed");
    expect(result.text).toBe(expected);
    expect(result.entries).toBeGreaterThan(2);
  });

  it("a TypeScript consumer on nodenext compiles against the declarations, and its type error is reported", async () => {
    writeFileSync(join(consumer.path, "uses.ts"), USES_TS);
    writeFileSync(join(consumer.path, "broken.ts"), BROKEN_TS);
    writeFileSync(join(consumer.path, "tsconfig.json"), JSON.stringify(CONSUMER_TSCONFIG));

    const ran = await run(process.execPath, [TSC, "-p", "tsconfig.json", "--pretty", "false"], consumer.path);

    const errors = [...ran.stdout.matchAll(/^(\S+)\((\d+),\d+\): error (TS\d+)/gm)].map(([, file, line, code]) => ({
      file,
      line: Number(line),
      code,
    }));
    // Exactly the deliberate one: uses.ts is clean, and nothing in the package's declarations fails.
    expect(errors, ran.stdout + ran.stderr).toEqual([{ file: "broken.ts", line: 2, code: "TS2322" }]);
    expect(ran.code).not.toBe(0);
  });

  it("the declarations import each other as .js, which is what dist holds", () => {
    const declarations = declarationsUnder(DIST);
    expect(declarations).toContain(join(DIST, "client", "index.d.ts"));
    for (const file of declarations) {
      const specifiers = [...readFileSync(file, "utf8").matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*)"(\.{1,2}\/[^"]+)"/g)].map(
        ([, s]) => s ?? "",
      );
      for (const specifier of specifiers) {
        expect(specifier, relative(ROOT, file)).toMatch(/\.js$/);
        expect(declarations, `${relative(ROOT, file)} imports ${specifier}`).toContain(
          resolve(file, "..", specifier.replace(/\.js$/, ".d.ts")),
        );
      }
    }
  });

  it("the bundle holds the SDK and src/core only: no node: import, no server code", () => {
    const code = readFileSync(BUNDLE, "utf8");
    expect(code).not.toMatch(/["']node:/);
    // One self-contained module: nothing left to import at run time.
    expect(code).not.toMatch(/^\s*import\b|\bimport\s*\(|\brequire\s*\(/m);
    expect(code).toMatch(/export\s*\{[^}]*\bcreateClient\b/);

    const map = JSON.parse(readFileSync(`${BUNDLE}.map`, "utf8")) as { sources: string[] };
    const modules = map.sources.map((source) => relative(ROOT, resolve(DIST, "client", source)));
    expect(modules).toContain(join("src", "client", "client.ts"));
    expect(modules.filter((module) => !/^src\/(client|core)\//.test(module))).toEqual([]);
  });
});
