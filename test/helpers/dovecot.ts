/**
 * A real Dovecot IMAP server on a free loopback port, configured in a temp folder and run in the foreground as
 * the current user (no system service), with one user and a Maildir. Plain IMAP with plaintext login over
 * loopback, or implicit TLS (port 993 style) with a self-signed certificate whose PEM the client can trust.
 * Messages are put in with IMAP APPEND, as a mail server's delivery would leave them.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ImapFlow } from "imapflow";
import { findExecutable, freePort } from "./mosquitto.js";

const run = promisify(execFile);

export interface Dovecot {
  host: string;
  port: number;
  user: string;
  password: string;
  tls: boolean;
  /** PEM of the self-signed certificate (TLS only), to trust as a CA. */
  ca?: string;
  /** Appends a message and returns its UID. */
  append(raw: string | Buffer, opts?: { mailbox?: string; date?: Date; flags?: string[] }): Promise<number>;
  /** Appends many messages over one connection (a year of emails for the benchmark). */
  appendMany(messages: { raw: string | Buffer; date?: Date }[], mailbox?: string): Promise<void>;
  /** UIDs and flags of the messages in a mailbox. */
  list(mailbox?: string): Promise<{ uid: number; flags: string[] }[]>;
  createMailbox(name: string): Promise<void>;
  stop(): Promise<void>;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export async function startDovecot(opts: { tls?: boolean; user?: string; password?: string } = {}): Promise<Dovecot> {
  const binary = findExecutable("dovecot");
  const dir = await mkdtemp(join(tmpdir(), "dovecot-"));
  // Dovecot's own processes (login, auth) run as other users and must reach the config and the sockets.
  await chmod(dir, 0o755);
  const port = await freePort();
  const user = opts.user ?? "meter";
  const password = opts.password ?? "app-password-Xy7";
  const tls = opts.tls ?? false;
  const me = userInfo();
  const root = me.uid === 0;
  // As root Dovecot drops to its packaged users for login and to an unprivileged user for mail; otherwise
  // everything runs as us.
  const loginUser = root ? "dovenull" : me.username;
  const internalUser = root ? "dovecot" : me.username;
  const mailUser = root ? "nobody" : me.username;
  const home = join(dir, "home");
  await mkdir(home, { recursive: true });
  if (root) await run("chown", [mailUser, home]);
  await writeFile(join(dir, "passwd"), `${user}:{PLAIN}${password}\n`, { mode: 0o644 });

  let ca: string | undefined;
  const ssl: string[] = ["ssl = no"];
  if (tls) {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]);
    await chmod(key, 0o644);
    ca = cert;
    ssl.splice(0, 1, "ssl = required", `ssl_cert = <${cert}`, `ssl_key = <${key}`);
  }
  const conf = [
    `base_dir = ${join(dir, "run")}`,
    `state_dir = ${join(dir, "state")}`,
    `instance_name = test-${port}`,
    "log_path = /dev/stderr",
    "protocols = imap",
    "listen = 127.0.0.1",
    ...ssl,
    "disable_plaintext_auth = no",
    "auth_mechanisms = plain login",
    `default_login_user = ${loginUser}`,
    `default_internal_user = ${internalUser}`,
    `default_internal_group = ${root ? "dovecot" : (await run("id", ["-gn"])).stdout.trim()}`,
    "first_valid_uid = 1",
    "passdb {",
    "  driver = passwd-file",
    `  args = scheme=PLAIN username_format=%u ${join(dir, "passwd")}`,
    "}",
    "userdb {",
    "  driver = static",
    `  args = uid=${mailUser} gid=${root ? "nogroup" : (await run("id", ["-gn"])).stdout.trim()} home=${home}/%u`,
    "}",
    "mail_location = maildir:~/Maildir",
    "service imap-login {",
    "  chroot =",
    "  inet_listener imap {",
    `    port = ${tls ? 0 : port}`,
    "    address = 127.0.0.1",
    "  }",
    "  inet_listener imaps {",
    `    port = ${tls ? port : 0}`,
    "    address = 127.0.0.1",
    tls ? "    ssl = yes" : "",
    "  }",
    "}",
    "service anvil {",
    "  chroot =",
    "}",
    "",
  ].join("\n");
  const confPath = join(dir, "dovecot.conf");
  await writeFile(confPath, conf);

  let output = "";
  const child: ChildProcess = spawn(binary, ["-F", "-c", confPath], { stdio: ["ignore", "pipe", "pipe"] });
  const keep = (d: Buffer): void => {
    output = (output + d.toString()).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exited: string | undefined;
  child.once("exit", (code, signal) => {
    exited = `exited (${signal ?? code})`;
  });
  const deadline = Date.now() + 10_000;
  while (!(await listening(port))) {
    if (exited) throw new Error(`dovecot ${exited}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`dovecot did not listen on ${port} within 10 s:\n${output}`);
    await new Promise((r) => setTimeout(r, 30));
  }

  const session = async <T>(fn: (c: ImapFlow) => Promise<T>): Promise<T> => {
    const c = new ImapFlow({
      host: "127.0.0.1",
      port,
      secure: tls,
      doSTARTTLS: tls ? undefined : false,
      auth: { user, pass: password },
      tls: tls ? { rejectUnauthorized: false } : undefined,
      logger: false,
    });
    c.on("error", () => {});
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.logout().catch(() => c.close());
    }
  };

  return {
    host: "127.0.0.1",
    port,
    user,
    password,
    tls,
    ca,
    async append(raw, o = {}) {
      return session(async (c) => {
        const r = await c.append(o.mailbox ?? "INBOX", raw, o.flags ?? [], o.date);
        if (!r || r.uid === undefined) throw new Error("APPEND returned no UID");
        return r.uid;
      });
    },
    async appendMany(messages, mailbox = "INBOX") {
      await session(async (c) => {
        for (const m of messages) await c.append(mailbox, m.raw, [], m.date);
      });
    },
    async list(mailbox = "INBOX") {
      return session(async (c) => {
        const lock = await c.getMailboxLock(mailbox);
        try {
          const out: { uid: number; flags: string[] }[] = [];
          if (c.mailbox && c.mailbox.exists === 0) return out;
          for await (const m of c.fetch("1:*", { uid: true, flags: true }))
            out.push({ uid: m.uid, flags: [...(m.flags ?? [])] });
          return out;
        } finally {
          lock.release();
        }
      });
    },
    async createMailbox(name) {
      await session((c) => c.mailboxCreate(name));
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 3000);
        await gone;
        clearTimeout(t);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
