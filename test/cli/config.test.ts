import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfig } from "../../src/cli/config.ts";
import { ModelConfigError, readModelConfig } from "../../src/llm/model-config.ts";
import { tempDir } from "../support/temp-dir.ts";

const BIN = fileURLToPath(new URL("../../bin/lifeline", import.meta.url));

describe("configuration", () => {
  it("has documented defaults and is frozen", () => {
    const config = loadConfig({}, {});
    expect(config).toMatchObject({
      host: "127.0.0.1",
      port: 8787,
      engine: "sqlite",
      dataDir: "./.lifeline",
      leaseMs: 10_000,
      heartbeatMs: 15_000,
      simTokensPerSecond: 30,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("flags win over the environment", () => {
    expect(loadConfig({ LIFELINE_PORT: "9000" }, { port: "9100" }).port).toBe(9100);
    expect(loadConfig({ LIFELINE_PORT: "9000" }, {}).port).toBe(9000);
  });

  it("one error lists every problem", () => {
    try {
      loadConfig({ LIFELINE_PORT: "http", LIFELINE_ENGINE: "postgres", LIFELINE_LEASE_MS: "5" }, { "heartbeat-ms": "-1" });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems;
      expect(problems).toHaveLength(4);
      expect(problems.join("\n")).toMatch(/LIFELINE_PORT[\s\S]*LIFELINE_ENGINE[\s\S]*LIFELINE_LEASE_MS[\s\S]*--heartbeat-ms/);
    }
  });

  it("the command exits 2 with the list, and on an unknown flag or command", () => {
    const bad = spawnSync(process.execPath, [BIN, "start", "--port", "abc", "--lease-ms", "1"], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--port");
    expect(bad.stderr).toContain("--lease-ms");
    const flag = spawnSync(process.execPath, [BIN, "start", "--nope", "1"], { encoding: "utf8" });
    expect(flag.status).toBe(2);
    expect(flag.stderr).toMatch(/nope/);
    const command = spawnSync(process.execPath, [BIN, "fly"], { encoding: "utf8" });
    expect(command.status).toBe(2);
    expect(command.stderr).toContain('unknown command "fly"');
  });

  it("a model configuration file with problems stops the start with every problem listed, and no key in the output", () => {
    const dir = tempDir();
    try {
      const file = join(dir.path, "models.json");
      writeFileSync(
        file,
        JSON.stringify({
          providers: { up: { type: "openai-compatible", baseUrl: "not a url", apiKeyEnv: "LIFELINE_TEST_MISSING_KEY" } },
          models: { main: { provider: "nowhere", fallbacks: ["ghost"] } },
        }),
      );
      const bad = spawnSync(process.execPath, [BIN, "start", "--config", file, "--port", "0"], {
        encoding: "utf8",
        env: { ...process.env, LIFELINE_ENGINE: "memory" },
      });
      expect(bad.status).toBe(2);
      expect(bad.stderr).toContain("providers.up.baseUrl");

      writeFileSync(
        file,
        JSON.stringify({
          providers: { up: { type: "openai-compatible", baseUrl: "http://127.0.0.1:9/v1", apiKeyEnv: "LIFELINE_TEST_MISSING_KEY" } },
          models: { main: { provider: "nowhere", fallbacks: ["ghost", "main"] } },
        }),
      );
      const refs = spawnSync(process.execPath, [BIN, "start", "--config", file, "--port", "0"], {
        encoding: "utf8",
        env: { ...process.env, LIFELINE_ENGINE: "memory" },
      });
      expect(refs.status).toBe(2);
      for (const problem of [
        "LIFELINE_TEST_MISSING_KEY is not set",
        'no provider named "nowhere"',
        'no model named "ghost"',
        "cannot fall back to itself",
      ]) {
        expect(refs.stderr).toContain(problem);
      }

      writeFileSync(file, "{ not json");
      const broken = spawnSync(process.execPath, [BIN, "start", "--config", file, "--port", "0"], {
        encoding: "utf8",
        env: { ...process.env, LIFELINE_ENGINE: "memory" },
      });
      expect(broken.status).toBe(2);
      expect(broken.stderr).toContain("models.json");
    } finally {
      dir.remove();
    }
  });

  it("a provider's extra headers: names and values checked, and none the HTTP client sets itself", () => {
    const dir = tempDir();
    try {
      const file = join(dir.path, "models.json");
      const withHeaders = (headers: Record<string, string>): string =>
        JSON.stringify({
          providers: { up: { type: "openai-compatible", baseUrl: "http://127.0.0.1:9/v1", headers } },
          models: { main: { provider: "up" } },
        });
      writeFileSync(file, withHeaders({ "x-team": "search", "OpenAI-Organization": "org-1" }));
      expect(readModelConfig(file).providers?.up).toMatchObject({ headers: { "x-team": "search" } });
      writeFileSync(
        file,
        withHeaders({
          "Transfer-Encoding": "chunked",
          connection: "close",
          "bad name": "x",
          "x-split": "a\r\nx-injected: b",
          "x-euro": "10 €",
        }),
      );
      let problems: readonly string[] = [];
      try {
        readModelConfig(file);
      } catch (error) {
        expect(error).toBeInstanceOf(ModelConfigError);
        problems = (error as ModelConfigError).problems;
      }
      expect(problems).toEqual([
        "providers.up.headers.Transfer-Encoding: set by Lifeline's HTTP client, not by configuration",
        "providers.up.headers.connection: set by Lifeline's HTTP client, not by configuration",
        "providers.up.headers.bad name: an HTTP header name",
        "providers.up.headers.x-split: a header value of visible Latin-1 characters, spaces and tabs, at most 8,192",
        "providers.up.headers.x-euro: a header value of visible Latin-1 characters, spaces and tabs, at most 8,192",
      ]);
    } finally {
      dir.remove();
    }
  });
});
