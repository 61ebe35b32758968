/**
 * What a rejection reason means for the user and what to do about it, for the page's status and decode views.
 * The reasons are the decoders' own words (src/sources/*); a reason without a hint is shown as it is.
 */
const HINTS: [RegExp, string][] = [
  [
    /CRC mismatch/i,
    "The checksum after '!' does not match the telegram: at least one character changed between the meter and meter2mqtt (a loose or long cable, interference, a converter dropping bytes), or the text was edited. meter2mqtt never uses such a telegram; an occasional one is harmless, many point at the cable.",
  ],
  [
    /no key|key is set|encrypted telegram/i,
    "This meter encrypts its telegrams: set the meter's key (and aad, if your grid operator gave you an authentication key).",
  ],
  [
    /truncated|incomplete|without '!'/i,
    "The telegram was cut short before its end marker '!': the line went quiet or a new telegram started. If every telegram is cut, check the baud rate and the cable.",
  ],
  [
    /tag|authentication/i,
    "The encrypted frame did not open with this key: check the key and the aad (authentication key) your grid operator gave you.",
  ],
];

export function hintFor(reason: string): string | undefined {
  for (const [re, hint] of HINTS) if (re.test(reason)) return hint;
  return undefined;
}
