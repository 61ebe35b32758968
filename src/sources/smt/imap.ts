/**
 * Reading Smart Meter Texas's daily emails from a mailbox: the messages from the configured sender with a UID above
 * the last one processed (as long as the mailbox keeps its UIDVALIDITY), each handed over with its CSV attachments.
 * The caller stores a message's intervals together with the new cursor before the next message is read, so a crash
 * or an outage never skips an email and never loses one half-read.
 */
import { readFileSync } from "node:fs";
import { ImapFlow } from "imapflow";
import { type AddressObject, simpleParser } from "mailparser";

export interface ImapSettings {
  host: string;
  port: number;
  tls: boolean;
  user: string;
  password: string;
  sender: string;
  mailbox: string;
  move_to?: string;
  flag?: string;
  /** PEM file of a CA to trust besides the system's (a self-hosted server with its own certificate). */
  ca?: string;
}

export interface Attachment {
  filename: string;
  content: Buffer;
}

export interface MailMessage {
  uid: number;
  uidValidity: string;
  /** The Date header, else the server's arrival time, UTC ms. */
  date: number;
  subject: string;
  /** From the configured sender exactly (the server's search matches substrings); others carry no attachments. */
  fromSender: boolean;
  csv: Attachment[];
  /** Names of attachments that are not CSV, skipped. */
  other: string[];
}

export interface MailboxState {
  uidValidity: string;
  lastUid: number;
}

/** Why a check failed, worded for the user (the status sensor and the log) and without the password. */
export class MailError extends Error {
  constructor(
    message: string,
    readonly kind: "auth" | "connect" | "mailbox" | "protocol",
  ) {
    super(message);
    this.name = "MailError";
  }
}

const TIMEOUT_MS = 30_000;

/** user@host: names the mailbox in the archive and the log without revealing anything secret. */
export function accountOf(s: Pick<ImapSettings, "user" | "host">): string {
  return `${s.user}@${s.host}`;
}

function addresses(from: AddressObject | AddressObject[] | undefined): string[] {
  const list = Array.isArray(from) ? from : from ? [from] : [];
  return list.flatMap((a) => a.value.map((v) => (v.address ?? "").toLowerCase())).filter(Boolean);
}

function isCsv(name: string, contentType: string): boolean {
  return /\.csv$/i.test(name) || /^text\/(csv|comma-separated-values)\b/i.test(contentType);
}

/** A client for the mailbox of `s`, not yet connected (the bridge's session and `meter2mqtt check` share it). */
export function imapClient(
  s: Pick<ImapSettings, "host" | "port" | "tls" | "user" | "password" | "ca">,
  timeoutMs = TIMEOUT_MS,
): ImapFlow {
  return new ImapFlow({
    host: s.host,
    port: s.port,
    secure: s.tls,
    // Plain IMAP never upgrades by itself here: with tls: false the user asked for cleartext (a local server).
    doSTARTTLS: s.tls ? undefined : false,
    auth: { user: s.user, pass: s.password },
    tls: s.ca ? { ca: readFileSync(s.ca) } : undefined,
    logger: false,
    disableAutoIdle: true,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs * 2,
  });
}

/** Why connecting or logging in failed, as a MailError (never with the password). */
export function describeImapError(err: unknown, s: Pick<ImapSettings, "host" | "port" | "user">): MailError {
  return describe(err, s as ImapSettings);
}

function describe(err: unknown, s: ImapSettings): MailError {
  const e = err as { authenticationFailed?: boolean; code?: string; responseText?: string; message?: string };
  const where = `${s.host}:${s.port}`;
  if (e.authenticationFailed)
    return new MailError(
      `${where} refused the login of ${s.user}${e.responseText ? ` (${e.responseText})` : ""}; with 2-step verification the mail provider wants an app password`,
      "auth",
    );
  if (e.code === "ECONNREFUSED" || e.code === "ENOTFOUND" || e.code === "ETIMEDOUT" || e.code === "EHOSTUNREACH")
    return new MailError(`cannot reach ${where}: ${e.code}`, "connect");
  if (e.code && /CERT|SSL|TLS|SELF_SIGNED/i.test(e.code))
    return new MailError(`TLS with ${where} failed: ${e.code}`, "connect");
  return new MailError(`${where}: ${e.responseText ?? e.message ?? String(err)}`, "protocol");
}

/**
 * One session: connects, opens the mailbox and calls `handle` for each new message from the sender, oldest first.
 * `handle` stores the message (and the cursor); afterwards the message is moved or flagged as configured.
 * Returns how many messages were handled.
 */
export async function readNewMail(
  s: ImapSettings,
  cursor: MailboxState | null,
  handle: (m: MailMessage) => Promise<void>,
): Promise<{ handled: number; uidValidity: string; reset: boolean }> {
  const client = imapClient(s);
  // Errors after connect arrive as events too; without a listener they would crash the process.
  let late: unknown;
  client.on("error", (err: unknown) => {
    late = err;
  });
  try {
    await client.connect();
  } catch (err) {
    throw describe(err, s);
  }
  try {
    let lock: Awaited<ReturnType<ImapFlow["getMailboxLock"]>>;
    try {
      lock = await client.getMailboxLock(s.mailbox);
    } catch (err) {
      throw new MailError(`cannot open the mailbox "${s.mailbox}": ${(err as Error).message}`, "mailbox");
    }
    try {
      const box = client.mailbox;
      if (!box) throw new MailError(`the mailbox "${s.mailbox}" is not open`, "mailbox");
      const uidValidity = String(box.uidValidity);
      // A new UIDVALIDITY means the server renumbered the mailbox: read it all again (imports are idempotent).
      const reset = cursor !== null && cursor.uidValidity !== uidValidity;
      const after = cursor && !reset ? cursor.lastUid : 0;
      const found = await client.search({ from: s.sender, uid: `${after + 1}:*` }, { uid: true });
      // `n:*` always matches the newest message, even when its UID is below n.
      const uids = (Array.isArray(found) ? found : []).filter((u) => u > after).sort((a, b) => a - b);
      let handled = 0;
      const sender = s.sender.toLowerCase();
      for (const uid of uids) {
        const fetched = await client.fetchOne(String(uid), { source: true, internalDate: true }, { uid: true });
        if (fetched === false || !fetched?.source) continue;
        const mail = await simpleParser(fetched.source, { skipHtmlToText: true, skipTextToHtml: true });
        // SEARCH FROM matches substrings of the whole header; only the exact address counts.
        const fromSender = addresses(mail.from).includes(sender);
        const internal = fetched.internalDate ? new Date(fetched.internalDate).getTime() : Number.NaN;
        const date = mail.date?.getTime() ?? internal;
        const message: MailMessage = {
          uid,
          uidValidity,
          date: Number.isFinite(date) ? date : Date.now(),
          subject: mail.subject ?? "",
          fromSender,
          csv: [],
          other: [],
        };
        if (fromSender)
          for (const a of mail.attachments) {
            const name = a.filename ?? "(unnamed)";
            if (isCsv(name, a.contentType)) message.csv.push({ filename: name, content: a.content });
            else message.other.push(name);
          }
        await handle(message);
        handled++;
        if (!fromSender) continue;
        if (s.move_to) await client.messageMove(String(uid), s.move_to, { uid: true });
        else if (s.flag) await client.messageFlagsAdd(String(uid), [s.flag], { uid: true });
      }
      return { handled, uidValidity, reset };
    } finally {
      lock.release();
    }
  } catch (err) {
    if (err instanceof MailError) throw err;
    throw describe(late ?? err, s);
  } finally {
    await client.logout().catch(() => client.close());
  }
}
