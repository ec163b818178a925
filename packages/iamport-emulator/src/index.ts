/** The Iamport V1 emulator: a stateful stand-in for Iamport's REST API, with a clock, schedules and webhooks; optionally PortOne V2's API beside it. */
export { startEmulator, TEST_CARDS } from "./emulator";
export type { EmulatorLogger, EmulatorOptions, RunningEmulator, RunningV2Emulator, V2EmulatorOptions } from "./emulator";
export { DECLINE_REASONS } from "./cards";
export { signWebhook } from "./v2/webhooks";
export type { V2WebhookBody, V2WebhookLogEntry, V2WebhookType } from "./v2/webhooks";
