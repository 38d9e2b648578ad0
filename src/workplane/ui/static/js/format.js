// Display formats. Numbers keep the API's precision where it matters (GPU portions such as 0.5).

const numberFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
const dateTime = new Intl.DateTimeFormat('en-GB', {
  year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  hour12: false, timeZone: 'UTC',
});

export const num = (value) => (value === null || value === undefined || value === '' ? '—' : numberFormat.format(Number(value)));

export function when(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : `${dateTime.format(date)} UTC`;
}

/** 93784 → "1d 2h"; two units at most, which is what a person compares at a glance. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  let rest = Math.max(0, Math.round(Number(seconds)));
  if (rest < 60) return `${rest}s`;
  const units = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  const parts = [];
  for (const [unit, size] of units) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n || parts.length) parts.push(`${n}${unit}`);
    if (parts.length === 2) break;
  }
  // "1h 0m" reads better as "1h".
  return parts.filter((part, i) => i === 0 || !part.startsWith('0')).join(' ');
}

/** "3 min ago" from an ISO time, relative to now. */
export function ago(iso) {
  if (!iso) return '—';
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  return seconds < 0 ? `in ${duration(-seconds)}` : `${duration(seconds)} ago`;
}

export function bytes(value) {
  if (value === null || value === undefined) return '—';
  let n = Number(value);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${numberFormat.format(n)} ${units[i]}`;
}

export const PHASES = ['Creating', 'Initializing', 'Resuming', 'Pending', 'Deleting', 'Running', 'Updating',
  'Stopped', 'Stopping', 'Degraded', 'Failed', 'Completed', 'Terminating', 'Unknown'];

/** The CSS class of a phase's colour (see app.css: .phase-*). */
export function phaseClass(phase) {
  return `phase phase-${String(phase || 'Unknown').toLowerCase()}`;
}
