// removed once renewal.ts is gone (with what is left of sql.ts).
/** pg's own conversion of a parameter to the text it sends (pg/lib/utils.js; @types/pg does not declare it). */
declare module "pg/lib/utils" {
  export function prepareValue(value: unknown): string | Buffer | null;
}
