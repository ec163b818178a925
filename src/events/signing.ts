import crypto from "node:crypto";

const PREFIX = "whsec_";

/** A new endpoint secret as Standard Webhooks spells it: whsec_ and 24 random bytes in base64. */
export function newSecret(): string {
  return PREFIX + crypto.randomBytes(24).toString("base64");
}

/**
 * The Standard Webhooks headers of one delivery: `webhook-signature` holds a
 * `v1,<base64 HMAC-SHA256 of id.timestamp.body>` per secret, separated by
 * spaces (two while a rotated secret still signs beside the new one).
 */
export function signatureHeaders(id: string, timestampSeconds: number, body: string, secrets: string[]): Record<string, string> {
  const content = `${id}.${timestampSeconds}.${body}`;
  const signatures = secrets.map((s) => {
    const key = Buffer.from(s.startsWith(PREFIX) ? s.slice(PREFIX.length) : s, "base64");
    return `v1,${crypto.createHmac("sha256", key).update(content, "utf8").digest("base64")}`;
  });
  return { "webhook-id": id, "webhook-timestamp": String(timestampSeconds), "webhook-signature": signatures.join(" ") };
}
