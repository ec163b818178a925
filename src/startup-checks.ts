import net from "node:net";

/**
 * Start-up failures worded for the person starting the server: each names the
 * variable to change, where the underlying error (EADDRINUSE, ECONNREFUSED)
 * names only an address.
 */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StartupError";
  }
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** The error of listening on a port, named after the variable that chose it. */
export function listenError(err: unknown, variable: string, host: string, port: number): Error {
  const code = codeOf(err);
  if (code === "EADDRINUSE") {
    return new StartupError(`${variable}=${port}: the port is already in use on ${host} (another instance of this server may be running); stop it or set ${variable}`, { cause: err });
  }
  if (code === "EACCES") return new StartupError(`${variable}=${port}: not allowed to listen on this port; set ${variable} above 1023`, { cause: err });
  if (code === "EADDRNOTAVAIL") return new StartupError(`HOST=${host}: no such address on this machine`, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Fails at once when the port cannot be listened on, before anything slow
 * (the embedded database) is opened. Port 0 always succeeds.
 */
export async function checkPortFree(variable: string, host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", (err) => reject(listenError(err, variable, host, port)));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
}

const CONNECTION_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EHOSTUNREACH", "ECONNRESET", "28P01", "28000", "3D000"]);

/** A failure to reach the configured database, named after DATABASE_URL (without its password). */
export function databaseConnectError(err: unknown, databaseUrl: string): Error {
  const code = codeOf(err);
  if (!code || !CONNECTION_CODES.has(code)) return err instanceof Error ? err : new Error(String(err));
  let where = "the configured address";
  try {
    const u = new URL(databaseUrl);
    where = `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    // config validated it as a URL; keep the generic wording
  }
  const reason =
    code === "28P01" || code === "28000"
      ? "the user or password was refused"
      : code === "3D000"
        ? "the database does not exist"
        : `${code}: nothing answered there`;
  return new StartupError(`DATABASE_URL: cannot connect to PostgreSQL at ${where} (${reason}); check DATABASE_URL, or unset it to use the embedded database`, { cause: err });
}
