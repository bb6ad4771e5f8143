// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import prettier from "eslint-config-prettier";

export default tseslint.config(
  { ignores: ["node_modules", "dist", ".lifeline", "bench/results", "test-artifacts", "src/web/public/**"] },
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
    // The architecture of DESIGN §2: core has no I/O; gateway and worker never import each other.
    files: ["src/core/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: ["node:*", "../engine/*", "../llm/*", "../worker/*", "../gateway/*", "../cli/*", "fastify", "better-sqlite3", "pino"] },
      ],
    },
  },
  {
    // The client SDK runs in browsers: web platform APIs only, and nothing of the server.
    files: ["src/client/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            "node:*",
            "../engine/*",
            "../gateway/*",
            "../worker/*",
            "../cli/*",
            "../llm/*",
            "../observability/*",
            "fastify",
            "ioredis",
            "better-sqlite3",
            "pino",
            "ws",
          ],
        },
      ],
    },
  },
  {
    files: ["src/gateway/**/*.ts"],
    rules: { "no-restricted-imports": ["error", { patterns: ["../worker/*", "../../worker/*"] }] },
  },
  {
    files: ["src/worker/**/*.ts"],
    rules: { "no-restricted-imports": ["error", { patterns: ["../gateway/*", "../../gateway/*"] }] },
  },
);
