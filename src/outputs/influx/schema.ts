import { z } from "zod";

/**
 * The line-protocol output: InfluxDB 1.x (`/write?db=`), InfluxDB 2.x (`/api/v2/write?org=&bucket=`) or
 * VictoriaMetrics (`/write`, which takes both). Several bridges may write to one server: the meter id is a tag.
 */
export const InfluxSchema = z
  .strictObject({
    // fetch() refuses a URL with credentials in it; they go in username/password or token, which the log never shows.
    url: z
      .string()
      .regex(
        /^https?:\/\/[^/\s@]+(\/\S*)?$/,
        "expected a URL like http://127.0.0.1:8086, without credentials (use token, or username and password)",
      )
      .describe(
        "The server, like http://192.168.1.20:8428 (VictoriaMetrics) or http://host:8086 (InfluxDB), without credentials.",
      ),
    version: z
      .union([z.literal(1), z.literal(2), z.literal("victoria")])
      .default("victoria")
      .describe("1: InfluxDB 1.x (/write?db=); 2: InfluxDB 2.x (/api/v2/write); victoria: VictoriaMetrics (/write)."),
    database: z
      .string()
      .min(1)
      .optional()
      .describe("InfluxDB 1.x: the database (required); VictoriaMetrics: added to every series as the label db."),
    bucket: z.string().min(1).optional().describe("InfluxDB 2.x: the bucket (required)."),
    org: z.string().min(1).optional().describe("InfluxDB 2.x: the organisation (required)."),
    token: z
      .string()
      .min(1)
      .optional()
      .describe(
        "InfluxDB 2.x API token; 1.x with authentication: username:password or a token; VictoriaMetrics behind vmauth: a bearer token. Never logged.",
      ),
    username: z.string().min(1).optional().describe("InfluxDB 1.x basic authentication, instead of a token."),
    password: z.string().min(1).optional().describe("Its password (with username); never logged."),
    measurement: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "expected letters, digits and _ (it becomes part of metric names)")
      .default("meter2mqtt")
      .describe("The measurement of live readings; interval data goes to <measurement>_interval."),
    batch_size: z.number().int().min(1).max(50_000).default(1000).describe("Points per request, at most."),
    flush_interval: z
      .number()
      .min(0)
      .default(5)
      .describe("Seconds a point may wait for its batch to fill before it is sent anyway."),
    buffer_limit: z
      .number()
      .int()
      .min(1)
      .default(100_000)
      .describe("Points kept while the server cannot be reached; past it the oldest are dropped (and logged)."),
    retry_min: z
      .number()
      .min(0)
      .default(1)
      .describe("Seconds before the first retry of a failed request, doubling up to retry_max."),
    retry_max: z.number().min(0).default(60).describe("The longest wait between retries, in seconds."),
    timeout: z.number().min(0.1).default(10).describe("Seconds a request may take."),
  })
  .superRefine((c, ctx) => {
    if (c.version === 1 && !c.database)
      ctx.addIssue({ code: "custom", path: ["database"], message: "missing: InfluxDB 1.x needs the database" });
    if (c.version === 2)
      for (const k of ["bucket", "org", "token"] as const)
        if (!c[k]) ctx.addIssue({ code: "custom", path: [k], message: `missing: InfluxDB 2.x needs ${k}` });
    if ((c.username === undefined) !== (c.password === undefined))
      ctx.addIssue({
        code: "custom",
        path: [c.username === undefined ? "username" : "password"],
        message: "missing: set both username and password, or neither",
      });
  });

export type InfluxConfig = z.output<typeof InfluxSchema>;
