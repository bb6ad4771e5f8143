import { afterAll, beforeAll } from "vitest";
import { postgresAvailable, type PostgresServer, startPostgres } from "./postgres-harness.ts";
import { tempDir } from "./temp-dir.ts";

/** One adapter of a store under a conformance suite. */
export interface StoreAdapter<S> {
  readonly name: "memory" | "sqlite" | "postgres";
  /** Call `requirePostgres(ctx)` first: without PostgreSQL it fails under CI and skips elsewhere. */
  readonly needsPostgres: boolean;
  /** A fresh, empty store; `reopen` gives another handle on the same one (a restart, another process). */
  open(): Promise<{ store: S; reopen(): Promise<S> }>;
}

/**
 * The memory, sqlite (a temp dir each) and PostgreSQL (a database each, on one private server the
 * file starts in `beforeAll` when PostgreSQL is there) adapters of a store, for a module's top level.
 */
export function storeAdapters<S>(make: {
  readonly label: string;
  memory(): S;
  sqlite(dir: string): S;
  postgres(url: string): Promise<S>;
}): StoreAdapter<S>[] {
  let server: PostgresServer | undefined;
  let databases = 0;
  const dirs: { remove(): void }[] = [];
  beforeAll(async () => void (postgresAvailable() ? (server = await startPostgres()) : undefined));
  afterAll(async () => {
    await server?.stop();
    for (const dir of dirs) dir.remove();
  });
  return [
    {
      name: "memory",
      needsPostgres: false,
      open: async () => {
        const store = make.memory();
        return { store, reopen: async () => store };
      },
    },
    {
      name: "sqlite",
      needsPostgres: false,
      open: async () => {
        const dir = tempDir(`lifeline-${make.label}-`);
        dirs.push(dir);
        return { store: make.sqlite(dir.path), reopen: async () => make.sqlite(dir.path) };
      },
    },
    {
      name: "postgres",
      needsPostgres: true,
      open: async () => {
        if (!server) throw new Error("no PostgreSQL");
        const url = await server.createDatabase(`${make.label.replace(/-/g, "_")}_${++databases}`);
        return { store: await make.postgres(url), reopen: () => make.postgres(url) };
      },
    },
  ];
}
