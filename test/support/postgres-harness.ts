import { spawn, spawnSync } from "node:child_process";
import { accessSync, chownSync, constants, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";

/**
 * A private PostgreSQL for tests: `initdb` into a temp dir (trust authentication, loopback only),
 * `postgres` on a free loopback port (never the machine's own server on 5432), one database
 * created for the test. Killed and removed when the test process exits.
 *
 * PostgreSQL refuses to run as root; when the test runs as root (CI containers do) the server and
 * `initdb` run as the `postgres` user (created by Debian's package) through `setpriv`, which execs
 * in place, so the pid the harness holds is the server's own.
 */

const HOST = "127.0.0.1";
/** How long a start may take before it fails with a clear error. */
const START_TIMEOUT_MS = 60_000;
/** How long `stop()` lets the server shut down (fast mode) before it sends SIGKILL. */
const STOP_GRACE_MS = 5_000;
/** How often a start is retried when another process took the free port first. */
const PORT_ATTEMPTS = 5;
const SUPERUSER = "postgres";

/** One running PostgreSQL started by {@link startPostgres}. */
export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/<database>`: the test's own database. */
  readonly url: string;
  readonly port: number;
  readonly database: string;
  /** The postmaster's pid (a new one after `restart()`). */
  readonly pid: number;
  /** A URL of another database on the same server, created on demand by {@link PostgresServer.createDatabase}. */
  createDatabase(name: string): Promise<string>;
  isRunning(): boolean;
  /** SIGKILL of the postmaster: the data dir stays until `stop()`. */
  kill(): Promise<void>;
  /** Starts the server again after `kill()`, on the same data dir and port, and waits until it answers. */
  restart(): Promise<void>;
  /** Fast shutdown (SIGINT), SIGKILL after a grace period, then removes the data dir. Safe to call twice. */
  stop(): Promise<void>;
  /** The last lines of the server's output, for error messages. */
  logTail(lines?: number): string;
}

// What a crashed or forgetful test run leaves behind is killed and removed when the process exits.
const liveProcesses = new Map<number, () => void>();
const liveDirs = new Set<string>();
process.on("exit", () => {
  for (const kill of liveProcesses.values()) kill();
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
});

/** Where the PostgreSQL programs are: the PATH, else Debian's `/usr/lib/postgresql/<version>/bin` (newest first). */
export function postgresBinDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const onPath = (env.PATH ?? "").split(delimiter).filter((dir) => dir !== "");
  const debian = (() => {
    try {
      return readdirSync("/usr/lib/postgresql")
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
        .map((v) => `/usr/lib/postgresql/${v}/bin`);
    } catch {
      return [];
    }
  })();
  // Only the PATH counts when a caller passes its own (a test of the notice); Debian's folder otherwise.
  const candidates = env === process.env ? [...onPath, ...debian] : onPath;
  return candidates.find((dir) => ["initdb", "postgres"].every((program) => executable(join(dir, program))));
}

/** Whether `initdb` and `postgres` can be found (see {@link postgresBinDir}). */
export function postgresAvailable(env: NodeJS.ProcessEnv = process.env): boolean {
  return postgresBinDir(env) !== undefined;
}

/**
 * Call first in a test (or `beforeEach`) that needs PostgreSQL. Without it the test fails under
 * `CI=true`, so CI can never go green without running the PostgreSQL tests, and elsewhere it is
 * skipped with a loud warning.
 */
export function requirePostgres(ctx: { skip(note?: string): void }, env: NodeJS.ProcessEnv = process.env): void {
  if (postgresAvailable(env)) return;
  const why = "initdb and postgres are not on PATH nor in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)";
  if (env.CI === "true") throw new Error(`${why}; CI must run the PostgreSQL tests`);
  console.warn(`\n!!! SKIPPING A POSTGRESQL TEST: ${why}. These tests did not run. !!!\n`);
  ctx.skip(why);
}

/** Starts a private PostgreSQL with one database (`lifeline` unless named) and resolves once it answers. */
export async function startPostgres(opts: { database?: string } = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (!bin) throw new Error("initdb/postgres not found (Debian: apt-get install postgresql)");
  const database = opts.database ?? "lifeline";
  const runAs = serverUser();
  for (let attempt = 1; ; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), "lifeline-pg-"));
    liveDirs.add(dir);
    await initCluster(bin, dir, runAs);
    const port = await freePort();
    const server = spawnServer(bin, dir, port, runAs, database);
    try {
      await waitForServer(server, dir, port);
      await server.createDatabase(database);
      return server;
    } catch (err) {
      await server.stop();
      const portTaken = server.logTail().includes("could not bind") || server.logTail().includes("Address already in use");
      if (portTaken && attempt < PORT_ATTEMPTS) continue;
      throw new Error(`postgres did not start (attempt ${attempt}): ${errorText(err)}\n--- log tail ---\n${server.logTail()}`);
    }
  }
}

/** The uid/gid to run PostgreSQL as: the current user, or `postgres` when we are root. */
interface RunAs {
  readonly uid: number;
  readonly gid: number;
  /** The command prefix that switches to that user, empty when none is needed. */
  readonly prefix: readonly string[];
}

/** The current user, unchanged. */
const AS_IS: RunAs = { uid: -1, gid: -1, prefix: [] };

function serverUser(): RunAs {
  const uid = process.getuid?.() ?? 1;
  if (uid !== 0) return { uid, gid: process.getgid?.() ?? 1, prefix: [] };
  const entry = spawnSync("getent", ["passwd", "postgres"], { encoding: "utf8" }).stdout.trim();
  const [, , u, g] = entry.split(":");
  if (!u || !g) throw new Error("running as root, and there is no `postgres` user to run PostgreSQL as (PostgreSQL refuses root)");
  if (!executable("/usr/bin/setpriv") && !executable("/bin/setpriv")) throw new Error("running as root, and setpriv is missing");
  return { uid: Number(u), gid: Number(g), prefix: ["setpriv", `--reuid=${u}`, `--regid=${g}`, "--clear-groups", "--"] };
}

/** `initdb` once per test process into a template, copied for each server (initdb costs seconds on a loaded machine). */
let template: Promise<string> | undefined;

async function initCluster(bin: string, dir: string, runAs: RunAs): Promise<void> {
  template ??= (async () => {
    const base = mkdtempSync(join(tmpdir(), "lifeline-pg-template-"));
    liveDirs.add(base);
    chownSync(base, runAs.uid, runAs.gid);
    const data = join(base, "data");
    const args = ["-D", data, "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"];
    await run(runAs, join(bin, "initdb"), args, base);
    return data;
  })();
  const data = await template;
  // `cp -a` keeps the owner (the server user) and the 0700 mode PostgreSQL insists on.
  rmSync(dir, { recursive: true, force: true });
  await run(AS_IS, "cp", ["-a", data, dir], tmpdir());
}

function run(runAs: RunAs, program: string, args: readonly string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const [cmd, ...rest] = [...runAs.prefix, program, ...args] as [string, ...string[]];
    const child = spawn(cmd, rest, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => void (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => void (output += c.toString()));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${program} exited ${code}: ${output.slice(-2000)}`))));
  });
}

function spawnServer(bin: string, dir: string, port: number, runAs: RunAs, database: string): PostgresServer {
  const settings = [
    ["listen_addresses", HOST],
    ["port", String(port)],
    ["unix_socket_directories", dir],
    // A test's database is thrown away: surviving a power loss only costs time. Commits still
    // reach the OS before they are acknowledged (synchronous_commit stays on), so a server killed
    // by a test keeps what it acknowledged, as a real one does.
    ["fsync", "off"],
    ["full_page_writes", "off"],
    ["max_connections", "200"],
  ].flatMap(([k, v]) => ["-c", `${k}=${v}`]);
  const [cmd, ...rest] = [...runAs.prefix, join(bin, "postgres"), "-D", dir, ...settings] as [string, ...string[]];
  let output = "";
  const keep = (chunk: Buffer): void => void (output = (output + chunk.toString()).slice(-16_384));
  /** One postmaster process on the data dir; `restart()` starts another on the same dir and port. */
  const launch = (): { child: ReturnType<typeof spawn>; exited: Promise<void>; running: () => boolean } => {
    const child = spawn(cmd, rest, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    let running = true;
    const exited = new Promise<void>((resolve) => {
      const done = (): void => {
        running = false;
        if (child.pid !== undefined) liveProcesses.delete(child.pid);
        resolve();
      };
      child.once("exit", done);
      child.once("error", (err) => {
        output += `\nspawn failed: ${err.message}`;
        done();
      });
    });
    if (child.pid !== undefined) liveProcesses.set(child.pid, () => child.kill("SIGKILL"));
    return { child, exited, running: () => running };
  };
  let current = launch();
  const urlOf = (name: string): string => `postgres://${SUPERUSER}@${HOST}:${port}/${name}`;
  const kill = async (): Promise<void> => {
    if (current.running()) current.child.kill("SIGKILL");
    await current.exited;
  };
  const server: PostgresServer = {
    url: urlOf(database),
    port,
    database,
    get pid() {
      return current.child.pid ?? -1;
    },
    createDatabase: async (name) => {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a plain database name: ${name}`);
      await withClient(urlOf("postgres"), async (client) => {
        const exists = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
        if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${name}`);
      });
      return urlOf(name);
    },
    isRunning: () => current.running(),
    kill,
    restart: async () => {
      if (current.running()) throw new Error("restart() needs the server down first (kill())");
      current = launch();
      await waitForServer(server, dir, port);
    },
    stop: async () => {
      if (current.running()) {
        current.child.kill("SIGINT");
        await Promise.race([current.exited, sleep(STOP_GRACE_MS, undefined, { ref: false })]);
      }
      await kill();
      rmSync(dir, { recursive: true, force: true });
      liveDirs.delete(dir);
    },
    logTail: (lines = 30) =>
      output
        .split("\n")
        .filter((l) => l.trim() !== "")
        .slice(-lines)
        .join("\n"),
  };
  return server;
}

/** Waits until the server answers on `port` and is the one whose data dir is `dir` (not another process on a reused port). */
async function waitForServer(server: PostgresServer, dir: string, port: number): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastError: unknown;
  for (;;) {
    if (!server.isRunning()) throw new Error("postgres exited");
    try {
      const dataDir = await withClient(`postgres://${SUPERUSER}@${HOST}:${port}/postgres`, async (client) => {
        const result = await client.query<{ data_directory: string }>("SHOW data_directory");
        return result.rows[0]?.data_directory;
      });
      if (dataDir === dir) return;
      throw new Error(`another server (data dir ${dataDir}) answers on port ${port}`);
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${START_TIMEOUT_MS} ms: ${errorText(lastError)}`);
    await sleep(100);
  }
}

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on("error", () => undefined); // surfaced through the rejected query instead
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A port that was free a moment ago: bind port 0, read the port, close. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, HOST, () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => (port > 0 ? resolve(port) : reject(new Error("the OS gave no free port"))));
    });
  });
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return existsSync(path);
  } catch {
    return false;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
