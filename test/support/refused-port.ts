import { connect } from "node:net";

/**
 * A loopback TCP port where every connect is refused, for tests of a dependency that is down.
 * Port 1 (tcpmux, which nothing runs): outside the range a system gives out for `listen(0)` and for
 * outgoing connections, so no server a test starts can take it between the choice and the connects,
 * and no connect can meet itself. A port taken with `listen(0)` and closed again could be either.
 * Checked once: where something does listen on it, the test says so instead of failing obscurely.
 */
const REFUSED_PORT = 1;

let checked: Promise<number> | undefined;

/** {@link REFUSED_PORT}, once a connect to it has been seen refused. */
export function refusedPort(): Promise<number> {
  checked ??= new Promise<number>((resolve, reject) => {
    const socket = connect(REFUSED_PORT, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      reject(new Error(`something listens on 127.0.0.1:${REFUSED_PORT}; tests of a dependency that is down need it refused`));
    });
    socket.once("error", (error: NodeJS.ErrnoException) =>
      error.code === "ECONNREFUSED"
        ? resolve(REFUSED_PORT)
        : reject(new Error(`127.0.0.1:${REFUSED_PORT}: expected ECONNREFUSED, got ${error.message}`)),
    );
  });
  return checked;
}
