import { createHash } from "node:crypto";
import { build } from "esbuild";
import type { FastifyInstance } from "fastify";
import { CLIENT_ENTRY, clientBundleOptions } from "../../build/client-bundle.ts";
import { LifelineError } from "../../core/errors.ts";
import { ROUTE_PATHS } from "../../core/routes.ts";

export interface ClientBundleOptions {
  /** The module to bundle. @defaultValue src/client/index.ts */
  readonly entryPoint?: string;
}

interface ClientBundle {
  readonly code: string;
  readonly etag: string;
}

/**
 * `GET /client.js`: the client SDK as one browser ES module, so a page can
 * `import { createClient } from "/client.js"`. Bundled from the source tree as it stands (no build
 * step before `lifeline start`), once, in memory, on the first request, with the options of
 * `npm run build`: the same code as the `lifeline/client` package export.
 */
export function clientBundleRoutes(app: FastifyInstance, options: ClientBundleOptions = {}): void {
  const entryPoint = options.entryPoint ?? CLIENT_ENTRY;
  let bundle: Promise<ClientBundle> | undefined;

  app.get(ROUTE_PATHS.clientBundle, async (request, reply) => {
    bundle ??= bundleClient(entryPoint);
    let built: ClientBundle;
    try {
      built = await bundle;
    } catch (error) {
      // Not cached: the next request tries again (and logs again) rather than serving a stale failure.
      bundle = undefined;
      request.log.error({ err: error }, "the client SDK could not be bundled");
      const internal = new LifelineError("internal");
      return reply.status(internal.status).send(internal.toJSON());
    }
    // The bundle changes with a deploy, not within a process: revalidate, and answer 304 while it holds.
    void reply.header("cache-control", "no-cache").header("etag", built.etag);
    if (request.headers["if-none-match"] === built.etag) return reply.status(304).send();
    return reply.type("text/javascript; charset=utf-8").send(built.code);
  });
}

async function bundleClient(entryPoint: string): Promise<ClientBundle> {
  const result = await build({ ...clientBundleOptions(entryPoint), write: false });
  const code = result.outputFiles[0]?.text;
  if (code === undefined) throw new Error("esbuild produced no output");
  return { code, etag: `"${createHash("sha256").update(code).digest("base64url").slice(0, 27)}"` };
}
