import type { ExternalAlert } from '../storage/external-alerts.ts';
import type { ReaderOptions } from './alertmanager.ts';
import { IntakeFormatError, LIMITS, detailsOf, hostName, isObject, keyOf, labelsOf, severityOf, text, withLabels, type ReadAlerts } from './normalize.ts';

/** An SDK's errors open an incident once this many of one kind come within this window. */
export const REPORT_THRESHOLD = { count: 3, withinMs: 5 * 60_000 } as const;

/**
 * Error reports, in the two shapes the systems OpsPilot replaces took:
 * - an SDK's report, `{projectId, error: {message, type|name, stack} | "message", metadata?}`:
 *   errors of one kind (project, type, message) open an incident once 3 come within 5 minutes,
 *   and repeat it after;
 * - a monitoring agent's error, `{error: {message, stack?}, severity: LOW|MEDIUM|HIGH|CRITICAL,
 *   source}`: an incident at once, classified by its severity.
 */
export function readErrorReport(body: unknown, opts: ReaderOptions): ReadAlerts {
  if (!isObject(body)) throw new IntakeFormatError('the body is not a JSON object (an error report)');
  const err = isObject(body.error) ? body.error : typeof body.error === 'string' ? { message: body.error } : null;
  if (!err) throw new IntakeFormatError('"error" is required: an object with a message, or a message');
  const message = text(err.message, LIMITS.title);
  if (!message) throw new IntakeFormatError('"error.message" is required');
  const kind = text(err.type, 128) ?? text(err.name, 128);
  const stack = text(err.stack, LIMITS.details);
  const metadata = isObject(body.metadata) ? body.metadata : undefined;
  const meta = metadata ? labelsOf(metadata) : {};

  if (body.projectId !== undefined) {
    const project = text(typeof body.projectId === 'number' ? String(body.projectId) : body.projectId, LIMITS.service);
    if (!project) throw new IntakeFormatError('"projectId" is a non-empty string');
    const alert: ExternalAlert = {
      key: `error:${keyOf(project, kind, message)}`,
      status: 'firing',
      title: kind ? `${kind}: ${message}` : message,
      service: project,
      labels: withLabels(opts.labels, { ...meta, project, ...(kind ? { error_type: kind } : {}) }),
      threshold: REPORT_THRESHOLD,
    };
    const details = detailsOf([stack, metadata ? `metadata: ${JSON.stringify(metadata).slice(0, 4096)}` : undefined]);
    if (details) alert.details = details;
    const severity = severityOf(body.severity) ?? severityOf(metadata?.severity);
    if (severity) alert.severity = severity;
    const host = hostName(text(metadata?.hostname ?? metadata?.host, LIMITS.host));
    if (host) alert.host = host;
    return { alerts: [alert], errors: [] };
  }

  const source = text(body.source, LIMITS.service);
  if (!source) throw new IntakeFormatError('"projectId" (an SDK report) or "source" (an error with a severity) is required');
  const alert: ExternalAlert = {
    key: `error:${keyOf(source, kind, message)}`,
    status: 'firing',
    title: message,
    service: source,
    labels: withLabels(opts.labels, { ...meta, source }),
  };
  const severity = severityOf(body.severity);
  if (severity) alert.severity = severity;
  if (stack) alert.details = stack;
  return { alerts: [alert], errors: [] };
}
