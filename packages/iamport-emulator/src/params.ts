import { badRequest } from "./errors";

/*
 * Reads Iamport parameters from a JSON or form body (or a query string) with
 * Iamport-style messages. Forms carry every value as a string, so numbers are
 * accepted as numeric strings too; anything else is a 400, never a crash.
 */

type Source = Record<string, unknown>;

const NUMERIC = /^-?\d+(\.\d+)?$/;

export class Params {
  /** `prefix` names nested objects in messages, e.g. `schedules[2].`. */
  constructor(
    private readonly src: Source,
    private readonly prefix = "",
  ) {}

  static of(value: unknown, prefix = ""): Params {
    if (value === undefined || value === null || value === "") return new Params({}, prefix);
    if (typeof value !== "object" || Array.isArray(value)) {
      throw badRequest(prefix ? `${prefix.replace(/\.$/, "")} 항목은 객체여야 합니다.` : "요청 본문은 객체여야 합니다.");
    }
    return new Params(value as Source, prefix);
  }

  /** The parameter's name as messages show it (with the nesting prefix). */
  label(name: string): string {
    return this.prefix + name;
  }

  private raw(name: string): unknown {
    return Object.prototype.hasOwnProperty.call(this.src, name) ? this.src[name] : undefined;
  }

  has(name: string): boolean {
    const v = this.raw(name);
    return v !== undefined && v !== null && v !== "";
  }

  str(name: string, maxLength?: number): string {
    const v = this.optStr(name, maxLength);
    if (v === null) throw badRequest(`${this.prefix}${name} 파라미터가 누락되었습니다.`);
    return v;
  }

  optStr(name: string, maxLength?: number): string | null {
    const v = this.raw(name);
    if (v === undefined || v === null || v === "") return null;
    if (typeof v !== "string" && typeof v !== "number") throw badRequest(`${this.prefix}${name} 파라미터는 문자열이어야 합니다.`);
    const s = String(v);
    if (maxLength !== undefined && s.length > maxLength) {
      throw badRequest(`${this.prefix}${name} 파라미터는 최대 ${maxLength}자까지 허용됩니다.`);
    }
    return s;
  }

  num(name: string, opts: { min?: number; positive?: boolean } = {}): number {
    const v = this.optNum(name, opts);
    if (v === null) throw badRequest(`${this.prefix}${name} 파라미터가 누락되었습니다.`);
    return v;
  }

  optNum(name: string, opts: { min?: number; positive?: boolean } = {}): number | null {
    const v = this.raw(name);
    if (v === undefined || v === null || v === "") return null;
    let n: number;
    if (typeof v === "number") n = v;
    else if (typeof v === "string" && NUMERIC.test(v.trim())) n = Number(v.trim());
    else throw badRequest(`${this.prefix}${name} 파라미터는 숫자여야 합니다. (입력값: ${JSON.stringify(v)})`);
    if (!Number.isFinite(n)) throw badRequest(`${this.prefix}${name} 파라미터는 숫자여야 합니다.`);
    if (opts.positive && n <= 0) throw badRequest(`${this.prefix}${name} 파라미터는 0보다 커야 합니다.`);
    if (opts.min !== undefined && n < opts.min) throw badRequest(`${this.prefix}${name} 파라미터는 ${opts.min} 이상이어야 합니다.`);
    return n;
  }

  int(name: string, opts: { min?: number } = {}): number {
    const v = this.optInt(name, opts);
    if (v === null) throw badRequest(`${this.prefix}${name} 파라미터가 누락되었습니다.`);
    return v;
  }

  optInt(name: string, opts: { min?: number } = {}): number | null {
    const n = this.optNum(name, opts);
    if (n !== null && !Number.isInteger(n)) throw badRequest(`${this.prefix}${name} 파라미터는 정수여야 합니다.`);
    return n;
  }

  optBool(name: string): boolean | null {
    const v = this.raw(name);
    if (v === undefined || v === null || v === "") return null;
    if (typeof v === "boolean") return v;
    if (v === "true" || v === "1" || v === 1) return true;
    if (v === "false" || v === "0" || v === 0) return false;
    throw badRequest(`${this.prefix}${name} 파라미터는 true 또는 false 여야 합니다.`);
  }

  /** Iamport stores custom_data as a string; JSON clients often send an object, which is kept as its JSON text. */
  customData(name = "custom_data"): string | null {
    const v = this.raw(name);
    if (v === undefined || v === null || v === "") return null;
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  /**
   * A list from JSON (`["a"]`), a repeated form key (`m[]=a&m[]=b`), an
   * indexed form key (`m[0]=a`, which qs may parse as an object) or a single value.
   */
  optList(name: string): unknown[] | null {
    const v = this.raw(name);
    if (v === undefined || v === null || v === "") return null;
    if (Array.isArray(v)) return v;
    if (typeof v === "object") {
      const entries = Object.entries(v as Source);
      if (!entries.every(([k]) => /^\d+$/.test(k))) throw badRequest(`${this.prefix}${name} 파라미터는 배열이어야 합니다.`);
      return entries.sort(([a], [b]) => Number(a) - Number(b)).map(([, x]) => x);
    }
    return [v];
  }

  optStrList(name: string): string[] | null {
    const list = this.optList(name);
    if (list === null) return null;
    return list.map((x) => {
      if (typeof x !== "string" && typeof x !== "number") throw badRequest(`${this.prefix}${name} 파라미터는 문자열 배열이어야 합니다.`);
      return String(x);
    });
  }
}
