import pino, { Logger } from "pino";

/** Fields that may carry card data or secrets, wherever they appear in a logged object. */
const SENSITIVE = [
  "card_number",
  "cardNumber",
  "expiry",
  "birth",
  "pwd_2digit",
  "pwd2digit",
  "imp_secret",
  "access_token",
  "authorization",
  "Authorization",
  "apiKey",
  "apiSecret",
  "password",
  "token",
  "customer_token",
  "customerToken",
];

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const key of SENSITIVE) {
    paths.push(key, `*.${key}`, `*.*.${key}`, `*.*.*.${key}`, `*.*.*.*.${key}`);
  }
  return paths;
}

/** Any run of 13 to 19 digits (with spaces or dashes) could be a card number: never logged. */
const CARD_LIKE = /\b\d(?:[ -]?\d){12,18}\b/g;

export function scrubText(s: string): string {
  return s.replace(CARD_LIKE, "[REDACTED-NUMBER]");
}

/**
 * Errors are logged by name, message, code and stack only: an HTTP client's
 * error carries the request (and its body, which may hold card data).
 */
export function safeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: scrubText(String(err)) };
  const out: Record<string, unknown> = { type: err.name, message: scrubText(err.message) };
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" || typeof code === "number") out.code = code;
  if (err.stack) out.stack = scrubText(err.stack);
  if (err.cause !== undefined) out.cause = safeError(err.cause);
  return out;
}

export function createLogger(opts: { level: string; pretty?: boolean; destination?: pino.DestinationStream }): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level,
    redact: { paths: redactPaths(), censor: "[REDACTED]" },
    serializers: { err: safeError, error: safeError },
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (opts.destination) return pino(options, opts.destination);
  if (opts.pretty) {
    return pino({ ...options, transport: { target: "pino-pretty", options: { colorize: true, translateTime: "SYS:HH:MM:ss.l" } } });
  }
  return pino(options);
}
