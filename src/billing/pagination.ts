import { BadUserInputError } from "../errors";

export interface PageInfo {
  hasNextPage: boolean;
  endCursor: string | null;
}

export interface Page<T> {
  nodes: T[];
  pageInfo: PageInfo;
}

/** Cursors are opaque to callers: base64url of the last row's key. */
export function encodeCursor(key: string): string {
  return Buffer.from(`c:${key}`, "utf8").toString("base64url");
}

export function decodeCursor(field: string, cursor: string): string {
  const raw = Buffer.from(cursor, "base64url").toString("utf8");
  const m = /^c:([A-Za-z0-9_-]{1,40})$/.exec(raw);
  if (!m) throw new BadUserInputError(field, "is not a cursor returned by this API");
  return m[1];
}
