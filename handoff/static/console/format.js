/* Text for values shown in the console: labels, elapsed times, dates. No DOM. */

/** "pending_followup" → "Pending followup"; "" for null, undefined and "". */
export function humanize(value) {
  if (value === null || value === undefined || value === "") return "";
  const text = String(value).replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Elapsed seconds as "42s", "3m 07s", "5h 02m" or, from 48 hours on, "3d 4h". */
export function fmtDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + String(s % 60).padStart(2, "0") + "s";
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return hrs + "h " + String(m % 60).padStart(2, "0") + "m";
  return Math.floor(hrs / 24) + "d " + (hrs % 24) + "h";
}

/** An ISO timestamp as a Date, or null when missing or unreadable. */
export function parseDate(iso) {
  if (!iso) return null;
  const d = new Date(iso);
  return isNaN(d.getTime()) ? null : d;
}

/** Short local time: the clock time for today, else the date and time ("" when unreadable). */
export function fmtTime(iso) {
  const d = parseDate(iso);
  if (!d) return "";
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** Full local date and time, for tooltips ("" when unreadable). */
export function fmtFull(iso) {
  const d = parseDate(iso);
  return d ? d.toLocaleString() : "";
}
