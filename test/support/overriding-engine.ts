import type { Engine } from "../../src/engine/port.ts";

/**
 * `engine` with some of its operations replaced, as a store that misbehaves (or a test that counts
 * calls) would have them; every other operation is the engine's own.
 */
export function overriding(engine: Engine, parts: Partial<Engine>): Engine {
  return new Proxy(engine, {
    get(target, name) {
      if (Object.hasOwn(parts, name)) return parts[name as keyof Engine];
      const value: unknown = Reflect.get(target, name);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
