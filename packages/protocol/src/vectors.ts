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

/**
 * Protocol 2 (monitors run by agents). A hub's `monitors` (hub envelopes carry no token) and an
 * agent's `check_results`, uncompressed so they read in a terminal; their payloads are
 * MONITORS_JSON and CHECK_RESULTS_JSON exactly.
 */
export const MONITORS_JSON =
  '{"version":"Qm9vdHN0cmFwcGVkX3NldA","monitors":[{"id":"01JMON0000000000000000HTTP","kind":"http","target":"http://10.0.0.5:8080/healthz","interval_s":60,"timeout_ms":5000,"conditions":["[STATUS] == 200","[BODY].status == \\"ok\\""],"http":{"method":"GET","headers":{"Accept":"application/json"},"accept_status":[[200,299]]}},{"id":"01JMON00000000000000000TCP","kind":"tcp","target":"db-1.internal:5432","interval_s":30,"timeout_ms":2000}]}';

export const MONITORS =
  '{"ver":"1.0","ts":1706140800,"type":"monitors","data":"eyJ2ZXJzaW9uIjoiUW05dmRITjBjbUZ3Y0dWa1gzTmxkQSIsIm1vbml0b3JzIjpbeyJpZCI6IjAxSk1PTjAwMDAwMDAwMDAwMDAwMDBIVFRQIiwia2luZCI6Imh0dHAiLCJ0YXJnZXQiOiJodHRwOi8vMTAuMC4wLjU6ODA4MC9oZWFsdGh6IiwiaW50ZXJ2YWxfcyI6NjAsInRpbWVvdXRfbXMiOjUwMDAsImNvbmRpdGlvbnMiOlsiW1NUQVRVU10gPT0gMjAwIiwiW0JPRFldLnN0YXR1cyA9PSBcIm9rXCIiXSwiaHR0cCI6eyJtZXRob2QiOiJHRVQiLCJoZWFkZXJzIjp7IkFjY2VwdCI6ImFwcGxpY2F0aW9uL2pzb24ifSwiYWNjZXB0X3N0YXR1cyI6W1syMDAsMjk5XV19fSx7ImlkIjoiMDFKTU9OMDAwMDAwMDAwMDAwMDAwMDBUQ1AiLCJraW5kIjoidGNwIiwidGFyZ2V0IjoiZGItMS5pbnRlcm5hbDo1NDMyIiwiaW50ZXJ2YWxfcyI6MzAsInRpbWVvdXRfbXMiOjIwMDB9XX0=","compression":"none"}';

export const CHECK_RESULTS_JSON =
  '{"results":[{"monitor_id":"01JMON0000000000000000HTTP","at":1706140800.25,"ok":true,"response_ms":12.5,"status":200},{"monitor_id":"01JMON00000000000000000TCP","at":1706140801,"ok":false,"response_ms":2000,"error":"connect ETIMEDOUT 10.0.0.9:5432"}]}';

export const CHECK_RESULTS =
  '{"ver":"1.0","ts":1706140801,"token":"my-secret-token","type":"check_results","data":"eyJyZXN1bHRzIjpbeyJtb25pdG9yX2lkIjoiMDFKTU9OMDAwMDAwMDAwMDAwMDAwMEhUVFAiLCJhdCI6MTcwNjE0MDgwMC4yNSwib2siOnRydWUsInJlc3BvbnNlX21zIjoxMi41LCJzdGF0dXMiOjIwMH0seyJtb25pdG9yX2lkIjoiMDFKTU9OMDAwMDAwMDAwMDAwMDAwMDBUQ1AiLCJhdCI6MTcwNjE0MDgwMSwib2siOmZhbHNlLCJyZXNwb25zZV9tcyI6MjAwMCwiZXJyb3IiOiJjb25uZWN0IEVUSU1FRE9VVCAxMC4wLjAuOTo1NDMyIn1dfQ==","compression":"none","id":"01JRES0000000000000000000A"}';
