import { accessToken } from "./ids";

const TOKEN_LIFETIME = 30 * 60;
const EXTEND_WINDOW = 60;
const EXTENSION = 5 * 60;

export interface TokenAnswer {
  access_token: string;
  now: number;
  expired_at: number;
}

/**
 * Iamport's token rules: a token lives 30 minutes; asking again before
 * expiry returns the same token and expiry, except in its last minute, when
 * that token is extended by 5 minutes; after expiry a new token is issued.
 */
export class TokenIssuer {
  private current: { token: string; expiresAt: number } | null = null;
  /** getToken calls answered, and how many of them issued a new token (the control API reports both). */
  private readonly counts = { requests: 0, issued: 0 };

  issue(now: number): TokenAnswer {
    this.counts.requests += 1;
    const c = this.current;
    if (c && now < c.expiresAt) {
      if (c.expiresAt - now <= EXTEND_WINDOW) c.expiresAt += EXTENSION;
      return { access_token: c.token, now, expired_at: c.expiresAt };
    }
    this.current = { token: accessToken(), expiresAt: now + TOKEN_LIFETIME };
    this.counts.issued += 1;
    return { access_token: this.current.token, now, expired_at: this.current.expiresAt };
  }

  stats(): { token_requests: number; tokens_issued: number } {
    return { token_requests: this.counts.requests, tokens_issued: this.counts.issued };
  }

  isValid(token: string, now: number): boolean {
    return this.current !== null && token === this.current.token && now < this.current.expiresAt;
  }

  /** Expires `token` at once (the expire_token fault): the next getToken issues a new one. */
  expire(token: string): void {
    if (this.current?.token === token) this.current = null;
  }

  /**
   * After a reset the clock goes back to real time; a token issued under an
   * advanced clock would otherwise live for days. Keep it (clients cache it)
   * but never longer than a fresh token would.
   */
  clamp(now: number): void {
    if (this.current && this.current.expiresAt > now + TOKEN_LIFETIME) this.current.expiresAt = now + TOKEN_LIFETIME;
  }
}

/** Accepts `Authorization: <token>`, `Authorization: Bearer <token>` and the legacy `X-ImpTokenHeader`. */
export function tokenFromHeaders(headers: Record<string, string | string[] | undefined>): string | null {
  const raw = headers["authorization"] ?? headers["x-imptokenheader"];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (!value) return null;
  const token = value.trim().replace(/^bearer\s+/i, "").trim();
  return token === "" ? null : token;
}
