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
];

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const key of SENSITIVE) {
    paths.push(key, `*.${key}`, `*.*.${key}`, `*.*.*.${key}`, `*.*.*.*.${key}`);
  }
  return paths;
}

export function createLogger(opts: { level: string; pretty?: boolean; destination?: pino.DestinationStream }): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level,
    redact: { paths: redactPaths(), censor: "[REDACTED]" },
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (opts.destination) return pino(options, opts.destination);
  if (opts.pretty) {
    return pino({ ...options, transport: { target: "pino-pretty", options: { colorize: true, translateTime: "SYS:HH:MM:ss.l" } } });
  }
  return pino(options);
}
