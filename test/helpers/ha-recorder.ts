/**
 * How Home Assistant's recorder turns a sensor's states into its long-term `sum` (the Energy dashboard's numbers):
 * homeassistant/components/sensor/recorder.py, _compile_statistics, for state_class total and total_increasing,
 * period by period (5 minutes), each period starting from the previous one's state, sum and last_reset. A new
 * last_reset (total) or a value that fell to below 90 % (total_increasing) starts a new cycle, which counts the
 * new value from 0. Tests feed it every state the bridge published and compare the sum with the true consumption.
 */
export interface HaState {
  /** UTC ms the state was written. */
  t: number;
  value: number;
  /** The entity's last_reset attribute (ISO), null when it has none. */
  lastReset: string | null;
}

interface Stat {
  state: number;
  sum: number;
  lastReset: string | null;
}

/** homeassistant/components/sensor/recorder.py reset_detected: a drop to below 90 % of the previous value. */
const resetDetected = (fstate: number, previous: number): boolean => fstate < 0.9 * previous;

export function recorderSum(
  states: readonly HaState[],
  stateClass: "total" | "total_increasing",
  periodMs = 300_000,
): number {
  const sorted = [...states].sort((a, b) => a.t - b.t);
  let last: Stat | undefined;
  let i = 0;
  let carried: HaState | undefined;
  while (i < sorted.length) {
    const start = Math.floor(sorted[i]!.t / periodMs) * periodMs;
    const period: HaState[] = carried ? [carried] : [];
    while (i < sorted.length && sorted[i]!.t < start + periodMs) period.push(sorted[i++]!);
    carried = period.at(-1);
    let lastReset: string | null = last?.lastReset ?? null;
    let oldLastReset = lastReset;
    let newState: number | null = last?.state ?? null;
    let oldState: number | null = last?.state ?? null;
    let sum = last?.sum ?? 0;
    for (const s of period) {
      const fstate = s.value;
      let reset = false;
      if (stateClass !== "total_increasing") {
        lastReset = s.lastReset;
        if (lastReset !== oldLastReset && lastReset !== null) reset = true;
        else if (oldState === null && lastReset === null) reset = true;
      } else if (oldState === null && lastReset === null) reset = true;
      else if (oldState === null || (newState !== null && resetDetected(fstate, newState))) reset = true;
      if (reset) {
        if (oldState !== null && newState !== null) sum += newState - oldState;
        newState = fstate;
        oldLastReset = lastReset;
        oldState = oldState !== null ? 0 : newState;
      } else newState = fstate;
    }
    if (newState === null || oldState === null) continue;
    sum += newState - oldState;
    last = { state: newState, sum, lastReset };
  }
  return last?.sum ?? 0;
}
