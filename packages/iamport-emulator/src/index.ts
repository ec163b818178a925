/** The Iamport V1 emulator: a stateful stand-in for Iamport's REST API, with a clock, schedules and webhooks. */
export { startEmulator, TEST_CARDS } from "./emulator";
export type { EmulatorLogger, EmulatorOptions, RunningEmulator } from "./emulator";
export { DECLINE_REASONS } from "./cards";
