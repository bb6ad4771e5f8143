/**
 * `store` (an engine, a key store…) with some of its operations replaced, as a store that
 * misbehaves (or a test that counts calls) would have them; every other operation is its own.
 */
export function overriding<T extends object>(store: T, parts: Partial<T>): T {
  return new Proxy(store, {
    get(target, name) {
      if (Object.hasOwn(parts, name)) return parts[name as keyof T];
      const value: unknown = Reflect.get(target, name);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
