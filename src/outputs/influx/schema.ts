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
      ),
    version: z.union([z.literal(1), z.literal(2), z.literal("victoria")]).default("victoria"),
    /** InfluxDB 1.x: the database (required); VictoriaMetrics: added to every series as the label `db`. */
    database: z.string().min(1).optional(),
    /** InfluxDB 2.x: bucket and organisation (both required). */
    bucket: z.string().min(1).optional(),
    org: z.string().min(1).optional(),
    /** InfluxDB 2.x API token; 1.x with auth: `username:password` or a token; VictoriaMetrics behind vmauth: a bearer token. */
    token: z.string().min(1).optional(),
    /** InfluxDB 1.x basic authentication, instead of a token. */
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** Measurement of live readings; interval data goes to `<measurement>_interval`. */
    measurement: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "expected letters, digits and _ (it becomes part of metric names)")
      .default("meter2mqtt"),
    /** Points per request, at most. */
    batch_size: z.number().int().min(1).max(50_000).default(1000),
    /** Seconds a point may wait for its batch to fill before it is sent anyway. */
    flush_interval: z.number().min(0).default(5),
    /** Points kept while the server cannot be reached; past it the oldest are dropped (and counted in the log). */
    buffer_limit: z.number().int().min(1).default(100_000),
    /** Seconds before the first retry of a failed request, doubling up to retry_max. */
    retry_min: z.number().min(0).default(1),
    retry_max: z.number().min(0).default(60),
    /** Seconds a request may take. */
    timeout: z.number().min(0.1).default(10),
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
