import { createHash } from "node:crypto";

/**
 * Test card numbers. Each picks an outcome, like Stripe's test cards; any
 * other Luhn-valid number behaves as a normal card. Dashes are optional.
 */
export const TEST_CARDS = {
  /** The billing key is refused (non-zero code). */
  BILLING_KEY_REFUSED: "4000-0000-0000-0119",
  /** Every charge is declined for the card limit ("한도초과"). */
  DECLINED_LIMIT: "4000-0000-0000-0002",
  /** Every charge is declined for insufficient balance ("잔액부족"). */
  DECLINED_INSUFFICIENT_BALANCE: "4000-0000-0000-9995",
  /** The billing key is issued; the first charge succeeds, every later one declines. */
  DECLINES_AFTER_FIRST_CHARGE: "4000-0000-0000-0341",
  /**
   * The billing key is issued; the first charge succeeds, every later one
   * declines softly for insufficient balance ("잔액부족"): dunning retries, then gives up.
   */
  SOFT_DECLINES_AFTER_FIRST_CHARGE: "4000-0000-0000-3220",
  /**
   * The billing key is issued; the first charge succeeds, the next two decline
   * softly ("잔액부족"), later ones succeed again: dunning recovers on a retry.
   */
  RECOVERS_AFTER_TWO_DECLINES: "4000-0000-0000-3238",
  /** A normal card (Luhn-valid). */
  VALID: "4242-4242-4242-4242",
  /** Another normal card (Luhn-valid). */
  VALID_MASTERCARD: "5555-5555-5555-4444",
} as const;

export type CardBehaviour =
  | "normal"
  | "refuse_billing_key"
  | "decline_limit"
  | "decline_balance"
  | "decline_after_first"
  | "soft_decline_after_first"
  | "recover_after_two_declines";

// Test numbers are recognised before the Luhn check, so they work whatever their checksum.
const SPECIAL_CARDS: ReadonlyMap<string, CardBehaviour> = new Map([
  [digitsOf(TEST_CARDS.BILLING_KEY_REFUSED), "refuse_billing_key"],
  [digitsOf(TEST_CARDS.DECLINED_LIMIT), "decline_limit"],
  [digitsOf(TEST_CARDS.DECLINED_INSUFFICIENT_BALANCE), "decline_balance"],
  [digitsOf(TEST_CARDS.DECLINES_AFTER_FIRST_CHARGE), "decline_after_first"],
  [digitsOf(TEST_CARDS.SOFT_DECLINES_AFTER_FIRST_CHARGE), "soft_decline_after_first"],
  [digitsOf(TEST_CARDS.RECOVERS_AFTER_TWO_DECLINES), "recover_after_two_declines"],
]);

export const BILLING_KEY_FAILED = "카드정보 인증 및 빌키 발급에 실패하였습니다.";

export const DECLINE_REASONS = {
  limit: "[F002] 한도초과: 카드 한도를 초과하였습니다.",
  balance: "[F003] 잔액부족: 결제 계좌의 잔액이 부족합니다.",
  suspended: "[F005] 거래정지카드: 카드사에서 승인을 거절하였습니다.",
  expired: "[F006] 유효기간오류: 카드 유효기간이 만료되었습니다.",
} as const;

// Korean card companies with their 금융결제원 codes; a BIN is mapped to one deterministically.
const ISSUERS: ReadonlyArray<readonly [code: string, name: string]> = [
  ["361", "BC카드"],
  ["365", "삼성카드"],
  ["366", "신한카드"],
  ["367", "현대카드"],
  ["368", "롯데카드"],
  ["371", "NH농협카드"],
  ["374", "하나카드"],
  ["381", "KB국민카드"],
];

/** What the emulator keeps about a card: never the whole number, expiry date or birth date. */
export interface CardProfile {
  masked: string;
  behaviour: CardBehaviour;
  /** UNIX seconds from which the card no longer works (end of its expiry month, KST). */
  validUntil: number;
  cardCode: string;
  cardName: string;
  /** 0 credit, 1 check. */
  cardType: number;
  /** A one-way fingerprint, to count charges of a card used without a billing key. */
  fingerprint: string;
}

export interface CardInput {
  card_number: string;
  expiry: string;
  birth?: string | null;
  pwd_2digit?: string | null;
}

export type CardCheck = { ok: true; card: CardProfile } | { ok: false; message: string };

function digitsOf(s: string): string {
  return s.replace(/[-\s]/g, "");
}

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Masks the 7th to 12th digits, as most Korean PGs do: `400000******0119`. */
export function maskCardNumber(digits: string): string {
  const keepEnd = Math.min(4, Math.max(0, digits.length - 6));
  return digits.slice(0, 6) + "*".repeat(digits.length - 6 - keepEnd) + digits.slice(digits.length - keepEnd);
}

const KST_OFFSET_SECONDS = 9 * 3600;

/**
 * Checks card data the way a PG would when issuing a billing key or charging
 * a card once. Format problems are refusals (non-zero code), not HTTP errors:
 * Iamport forwards the PG's refusal message.
 */
export function inspectCard(input: CardInput, now: number): CardCheck {
  const fail = (detail: string): CardCheck => ({ ok: false, message: `${BILLING_KEY_FAILED} ${detail}` });

  const digits = digitsOf(input.card_number);
  if (!/^\d{13,19}$/.test(digits)) return fail("[F112] 유효하지 않은 카드번호입니다.");
  const special = SPECIAL_CARDS.get(digits);
  if (special === undefined && !luhnValid(digits)) return fail("[F112] 유효하지 않은 카드번호입니다.");
  if (special === "refuse_billing_key") return fail("[F113] 카드사에서 빌링키 발급을 거절하였습니다.");

  const m = /^(\d{4})-(\d{2})$/.exec(input.expiry.trim());
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 12) return fail("[F114] 카드 유효기간 형식이 올바르지 않습니다. (YYYY-MM)");
  // The card works until the first instant of the following month, Korean time.
  const validUntil = Date.UTC(Number(m[1]), Number(m[2]), 1) / 1000 - KST_OFFSET_SECONDS;
  if (validUntil <= now) return fail("[F115] 유효기간이 만료된 카드입니다.");

  if (input.birth != null && input.birth !== "") {
    const b = input.birth.trim();
    const validBirth =
      /^\d{10}$/.test(b) ||
      (/^\d{6}$/.test(b) &&
        Number(b.slice(2, 4)) >= 1 &&
        Number(b.slice(2, 4)) <= 12 &&
        Number(b.slice(4, 6)) >= 1 &&
        Number(b.slice(4, 6)) <= 31);
    if (!validBirth) return fail("[F116] 생년월일(YYMMDD) 또는 사업자등록번호(10자리)가 올바르지 않습니다.");
  }
  if (input.pwd_2digit != null && input.pwd_2digit !== "" && !/^\d{2}$/.test(input.pwd_2digit.trim())) {
    return fail("[F117] 카드 비밀번호 앞 2자리가 올바르지 않습니다.");
  }

  const [cardCode, cardName] = ISSUERS[Number(digits.slice(0, 6)) % ISSUERS.length];
  return {
    ok: true,
    card: {
      masked: maskCardNumber(digits),
      behaviour: special ?? "normal",
      validUntil,
      cardCode,
      cardName,
      cardType: 0,
      fingerprint: createHash("sha256").update(digits).digest("base64url"),
    },
  };
}

/**
 * The outcome of the `chargeNumber`-th charge (1-based) of a card:
 * null when approved, else the decline reason.
 */
export function declineReason(card: CardProfile, chargeNumber: number, now: number): string | null {
  if (card.validUntil <= now) return DECLINE_REASONS.expired;
  switch (card.behaviour) {
    case "decline_limit":
      return DECLINE_REASONS.limit;
    case "decline_balance":
      return DECLINE_REASONS.balance;
    case "decline_after_first":
      return chargeNumber > 1 ? DECLINE_REASONS.suspended : null;
    case "soft_decline_after_first":
      return chargeNumber > 1 ? DECLINE_REASONS.balance : null;
    case "recover_after_two_declines":
      return chargeNumber === 2 || chargeNumber === 3 ? DECLINE_REASONS.balance : null;
    default:
      return null;
  }
}
