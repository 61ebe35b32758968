/**
 * The account and service location to read, from the portal's user-data answer when the configuration does not
 * name them. user-data is a list with one entry per customer account:
 *   {account, primaryServiceLocationId, inactive, serviceLocationToIndustries: {"<loc>": ["ELECTRIC"]},
 *    serviceLocationIdToServiceLocationSummary: {"<loc>": {meterNumbersToExternalMeterBaseIds: {"<meter>": …},
 *    serviceStatus}}, serviceLocationToUserDataServiceLocationSummaries: {"<loc>": [{services: ["ELEC"], …}]}}
 */

export interface ServiceLocation {
  account: string;
  serviceLocation: string;
  /** Meter numbers the portal lists at the location. */
  meters: string[];
  electric: boolean;
  /** The account's primary location. */
  primary: boolean;
  /** Neither the account nor the location is marked inactive. */
  active: boolean;
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined =>
  typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : undefined;

export function serviceLocations(userData: unknown): ServiceLocation[] {
  const out: ServiceLocation[] = [];
  for (const entry of Array.isArray(userData) ? userData : []) {
    if (!isObject(entry)) continue;
    const account = str(entry.account);
    if (!account) continue;
    const industries = isObject(entry.serviceLocationToIndustries) ? entry.serviceLocationToIndustries : {};
    const summary = isObject(entry.serviceLocationIdToServiceLocationSummary)
      ? entry.serviceLocationIdToServiceLocationSummary
      : {};
    const summaries = isObject(entry.serviceLocationToUserDataServiceLocationSummaries)
      ? entry.serviceLocationToUserDataServiceLocationSummaries
      : {};
    const ids = new Set([...Object.keys(industries), ...Object.keys(summary), ...Object.keys(summaries)]);
    const primaryId = str(entry.primaryServiceLocationId);
    if (ids.size === 0 && primaryId) ids.add(primaryId);
    for (const id of ids) {
      const s = isObject(summary[id]) ? (summary[id] as Obj) : {};
      const list = Array.isArray(summaries[id]) ? (summaries[id] as unknown[]).filter(isObject) : [];
      const ind = Array.isArray(industries[id]) ? (industries[id] as unknown[]) : undefined;
      const services = list.flatMap((l) => (Array.isArray(l.services) ? l.services : []));
      // Locations list their industries, their services, or neither (then taken as electric: it is all we read).
      const electric =
        ind !== undefined
          ? ind.includes("ELECTRIC")
          : services.length > 0
            ? services.some((v) => v === "ELEC" || v === "ELECTRIC")
            : true;
      const meters = isObject(s.meterNumbersToExternalMeterBaseIds)
        ? Object.keys(s.meterNumbersToExternalMeterBaseIds)
        : [];
      const statuses = [str(s.serviceStatus), ...list.map((l) => str(l.serviceStatus))].filter(Boolean);
      out.push({
        account,
        serviceLocation: id,
        meters,
        electric,
        primary: id === primaryId,
        active: entry.inactive !== true && !statuses.some((v) => v !== "ACTIVE"),
      });
    }
  }
  return out;
}

/**
 * The location to read: the configured one, else the only electric one, else the first account's primary one
 * (active first). An error message when none fits, listing what there is.
 */
export function chooseLocation(
  locations: readonly ServiceLocation[],
  want: { account?: string; serviceLocation?: string },
): { chosen: ServiceLocation; others: ServiceLocation[] } | { error: string } {
  const list = (ls: readonly ServiceLocation[]) =>
    ls
      .map((l) => `account ${l.account} location ${l.serviceLocation}${l.electric ? "" : " (not electric)"}`)
      .join(", ") || "none";
  let fits = locations.filter(
    (l) =>
      (want.account === undefined || l.account === want.account) &&
      (want.serviceLocation === undefined || l.serviceLocation === want.serviceLocation),
  );
  if (fits.length === 0)
    return {
      error: `user-data has no ${[
        want.account !== undefined ? `account ${want.account}` : "",
        want.serviceLocation !== undefined ? `service location ${want.serviceLocation}` : "",
      ]
        .filter(Boolean)
        .join(" with ")} (the login has: ${list(locations)})`,
    };
  const electric = fits.filter((l) => l.electric);
  if (electric.length === 0) return { error: `no electric service location among ${list(fits)}` };
  fits = [...electric].sort((a, b) => Number(b.active) - Number(a.active) || Number(b.primary) - Number(a.primary));
  const chosen = fits[0] as ServiceLocation;
  return { chosen, others: fits.slice(1) };
}
