import { CronExpressionParser } from 'cron-parser';

export interface Schedule {
  period_s: number | null;
  cron: string | null;
  tz: string;
}

/** Why a schedule cannot be used, or null: a cron expression that parses, in a time zone that exists. */
export function scheduleProblem(s: Schedule): string | null {
  if ((s.period_s === null) === (s.cron === null)) return 'give either period_s or cron';
  try {
    new Intl.DateTimeFormat('en', { timeZone: s.tz });
  } catch {
    return `tz: "${s.tz}" is not a time zone (an IANA name such as Europe/Paris, or UTC)`;
  }
  if (s.cron !== null) {
    try {
      const next = CronExpressionParser.parse(s.cron, { tz: s.tz });
      next.next();
    } catch (err) {
      return `cron: ${(err as Error).message}`;
    }
  }
  return null;
}

/**
 * When the next success is expected after one at `after`: a period later, or the cron
 * expression's next time in its time zone (a job that runs at 02:00 Europe/Paris is expected at
 * 02:00 there, summer and winter).
 */
export function nextDue(s: Schedule, after: Date): Date {
  if (s.period_s !== null) return new Date(after.getTime() + s.period_s * 1000);
  return CronExpressionParser.parse(s.cron!, { currentDate: after, tz: s.tz }).next().toDate();
}
