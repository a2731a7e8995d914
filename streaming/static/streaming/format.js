// How the page writes money, token counts and durations: one function each, with the admin's rules
// (streaming/templatetags/streaming_costs.py), so that a cost reads the same in a reply, the sidebar,
// the budget and the admin. Costs are decimal strings with ten places; people read cents for a dollar
// or more, and three significant digits below a dollar (never fewer than two decimals), so a small
// cost never rounds to zero. Rounding is done on the decimal digits, half up, as Python's Decimal does.

const SMALLEST_PLACES = 10; // the stored precision: a smaller non-zero amount is "<$0.0000000001"
const grouped = (digits) => digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");

/** `"0.0185610000"` as {negative, digits, scale}: the amount is digits × 10^-scale. */
function parseDecimal(amount) {
  const exponent = typeof amount === "number" || /e/i.test(String(amount));
  const text = (exponent ? Number(amount).toFixed(20) : String(amount)).trim();
  const negative = text.startsWith("-");
  const [whole, fraction = ""] = text.replace(/^[-+]/, "").split(".");
  if (!/^\d*$/.test(whole) || !/^\d*$/.test(fraction)) return null;
  return { negative, digits: BigInt(whole + fraction || "0"), scale: fraction.length };
}

/** `digits × 10^-scale` rounded half up to `places` decimals, as a plain decimal string. */
function quantize(digits, scale, places) {
  let rounded = digits;
  if (places < scale) {
    const divisor = 10n ** BigInt(scale - places);
    rounded = digits / divisor + (2n * (digits % divisor) >= divisor ? 1n : 0n);
  } else {
    rounded = digits * 10n ** BigInt(places - scale);
  }
  const text = rounded.toString().padStart(places + 1, "0");
  return [text.slice(0, text.length - places), text.slice(text.length - places)];
}

/** `$1,234.57`, `$0.40`, `$0.485`, `$0.0019`; `missing` for no amount (nothing priced). */
export function usd(amount, missing = "—") {
  if (amount == null || amount === "") return missing;
  const value = parseDecimal(amount);
  if (value === null) return missing;
  const { negative, digits, scale } = value;
  if (digits === 0n) return "$0.00";
  const sign = negative ? "-" : "";
  const length = digits.toString().length;
  const adjusted = length - 1 - scale; // the exponent of the first significant digit
  if (adjusted < -SMALLEST_PLACES) return `${sign}<$0.${"0".repeat(SMALLEST_PLACES - 1)}1`;
  const places = adjusted >= 0 ? 2 : Math.max(2, 2 - adjusted);
  let [whole, fraction] = quantize(digits, scale, places);
  if (places > 2) fraction = fraction.replace(/0+$/, "").padEnd(2, "0"); // 0.400 -> 0.40
  return `${sign}$${grouped(whole)}.${fraction}`;
}

/** A count with thousands separators; nothing is 0. */
export function tokens(count) {
  return grouped(String(Math.round(Number(count) || 0)));
}

/** A duration: `850 ms`, `2.1 s`, `14 s`; empty when nothing was timed. */
export function duration(ms) {
  if (ms == null) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
}
