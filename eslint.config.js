// @ts-check
import { readdirSync } from "node:fs";
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import prettier from "eslint-config-prettier";
import globals from "globals";

/**
 * The architecture of DESIGN §2, as imports each layer of `src` may make (besides its own files and
 * packages). core has no I/O; gateway and worker never import each other; the client SDK runs in
 * browsers; sim-llm is a program of its own that the product never loads.
 */
const LAYERS = {
  core: [],
  observability: [],
  projections: ["core"],
  client: ["core"],
  llm: ["core", "observability"],
  engine: ["core", "observability"],
  worker: ["core", "engine", "llm", "observability"],
  build: [],
  gateway: ["core", "engine", "projections", "observability", "build"],
  "sim-llm": ["core", "llm"],
  chaos: ["core", "client", "llm", "projections"],
  web: [],
  cli: ["core", "engine", "llm", "observability", "projections", "worker", "gateway", "client", "chaos", "sim-llm"],
};

/** Packages with I/O, or of the server, that the browser SDK and the pure core must not load. */
const SERVER_PACKAGES = ["fastify", "ioredis", "better-sqlite3", "pino", "ws", "prom-client", "@fastify/*"];

function layerBoundaries() {
  // A new folder under src is a new layer: it must say what it may import.
  const unlisted = readdirSync("src", { withFileTypes: true }).filter((d) => d.isDirectory() && !(d.name in LAYERS));
  if (unlisted.length > 0) throw new Error(`eslint.config.js: add ${unlisted.map((d) => `src/${d.name}`).join(", ")} to LAYERS`);
  return Object.entries(LAYERS).map(([layer, allowed]) => {
    const forbidden = Object.keys(LAYERS).filter((other) => other !== layer && !allowed.includes(other));
    const patterns = [
      {
        group: forbidden.flatMap((other) => [`../${other}/*`, `../../${other}/*`, `../../../${other}/*`]),
        message: `${layer} may import only ${allowed.join(", ") || "its own files"} (eslint.config.js LAYERS).`,
      },
    ];
    if (layer === "core" || layer === "client" || layer === "projections") {
      patterns.push({ group: ["node:*", ...SERVER_PACKAGES], message: `${layer} runs anywhere: no Node built-ins, no server packages.` });
    }
    return { files: [`src/${layer}/**/*.ts`], rules: { "no-restricted-imports": ["error", { patterns }] } };
  });
}

export default tseslint.config(
  { ignores: ["node_modules", "dist", ".lifeline", "bench/results", "test-artifacts"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  // Layout is Prettier's alone (`npm run format`); rules that would argue with it are off.
  prettier,
  {
    files: ["**/*.ts"],
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
    },
  },
  {
    // The pages' scripts: ES modules that run in the browser (type-checked by tsconfig.web.json).
    files: ["src/web/public/**/*.js"],
    languageOptions: { globals: globals.browser },
  },
  ...layerBoundaries(),
);
