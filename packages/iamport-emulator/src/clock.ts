/**
 * The emulator's clock: real time plus an offset, in UNIX seconds.
 * Tests move it forward (like Stripe test clocks) instead of waiting.
 */
export class Clock {
  private offsetSeconds = 0;

  /** Current emulator time in UNIX seconds. */
  now(): number {
    return Math.floor(Date.now() / 1000) + this.offsetSeconds;
  }

  /** Moves the clock forward; time never goes backwards. */
  advance(seconds: number): number {
    if (!Number.isFinite(seconds) || seconds < 0) throw new RangeError("seconds must be a non-negative number");
    this.offsetSeconds += Math.floor(seconds);
    return this.now();
  }

  /** Continues a clock saved earlier (the state file): real time plus the offset it had. */
  restoreOffset(seconds: number): void {
    if (!Number.isSafeInteger(seconds) || seconds < 0) throw new RangeError("offset must be a non-negative whole number of seconds");
    this.offsetSeconds = seconds;
  }

  /** Back to real time. */
  reset(): void {
    this.offsetSeconds = 0;
  }

  get offset(): number {
    return this.offsetSeconds;
  }
}
