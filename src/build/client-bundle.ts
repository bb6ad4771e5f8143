import { fileURLToPath } from "node:url";
import type { BuildOptions } from "esbuild";

/** The SDK's entry point, the module that `lifeline/client` exports. */
export const CLIENT_ENTRY = fileURLToPath(new URL("../client/index.ts", import.meta.url));

/**
 * How the client SDK becomes one ES module with no imports left: the options of `npm run build`
 * (dist/client/index.js, the `lifeline/client` export) and of the gateway's `GET /client.js` alike,
 * so both serve the same code. Each caller adds only where the output goes.
 * `platform: "neutral"` resolves no Node built-in: a `node:` import fails the build instead of
 * reaching a browser. ES2022 runs on Node 20 and on every current browser.
 */
export function clientBundleOptions(entryPoint: string = CLIENT_ENTRY): BuildOptions {
  return {
    entryPoints: [entryPoint],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    charset: "utf8",
    logLevel: "silent",
  };
}
