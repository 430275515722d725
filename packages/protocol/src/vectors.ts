/**
 * Conformance vectors for other implementations of the protocol (docs/PROTOCOL.md).
 * Fixed envelopes. The first two are the original OpsPilot (Go) agent's heartbeat and alert;
 * the alert's data was gzipped by another implementation (CPython's zlib), not by fflate.
 */
export const GO_HEARTBEAT =
  '{"ver":"1.0","ts":1706140800,"token":"my-secret-token","type":"heartbeat","data":"","compression":"none"}';

export const GO_ALERT_JSON =
  '{"type":"systemd","source":"nginx","message":"nginx crashed","logs":"error logs","exit_code":1}';

export const GO_ALERT_GZIP_B64 =
  'H4sIAAAAAAACAz3KQQqAIBBG4avIrN207TIhOpiQTsxvoER3T1u0fB/vptpPppXQUTkHsgS51E8qMZU2IDPg4i/Gq8POcz0kYjCripovLHFLdfMSxr88L/QffQpfAAAA';

export const GO_ALERT = `{"ver":"1.0","ts":1706140800,"token":"my-secret-token","type":"alert","data":"${GO_ALERT_GZIP_B64}","compression":"gzip"}`;

export const GO_ALERT_PLAIN = `{"ver":"1.0","ts":1706140800,"token":"my-secret-token","type":"alert","data":"${Buffer.from(GO_ALERT_JSON).toString('base64')}","compression":"none"}`;
