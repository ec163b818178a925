import net from "node:net";
import { checkPortFree, databaseConnectError, StartupError } from "../../src/startup-checks";

describe("start-up errors name the variable to change", () => {
  it("a port in use names the variable and says another instance may be running", async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const err = await checkPortFree("IAMPORT_EMULATOR_PORT", "127.0.0.1", port).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(StartupError);
      expect(err!.message).toContain(`IAMPORT_EMULATOR_PORT=${port}`);
      expect(err!.message).toContain("another instance");
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
    // Free again: no error.
    await expect(checkPortFree("PORT", "127.0.0.1", port)).resolves.toBeUndefined();
  });

  it("a refused database connection names DATABASE_URL without its password", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
    const err = databaseConnectError(refused, "postgres://billing:s3cret-pw@db.internal:6543/billing");
    expect(err).toBeInstanceOf(StartupError);
    expect(err.message).toContain("DATABASE_URL");
    expect(err.message).toContain("db.internal:6543/billing");
    expect(err.message).not.toContain("s3cret-pw");
    const badPassword = Object.assign(new Error("password authentication failed"), { code: "28P01" });
    expect(databaseConnectError(badPassword, "postgres://u:p@h/d").message).toContain("user or password was refused");
  });

  it("leaves other errors as they are", () => {
    const other = new Error("something else");
    expect(databaseConnectError(other, "postgres://h/d")).toBe(other);
  });
});
