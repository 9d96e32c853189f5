"""Detached alert delivery: ``python -m drygate.alert_sinks webhook URL`` < alert.json.

Runs in its own process (started by :func:`drygate.alerts.emit`) so a slow or dead
endpoint never delays a decision. Uses the standard library's ``urllib`` (no extra
dependency on the hook's machine). Delivery failures are appended to the fallback
alert log.

The body is the alert (see :mod:`drygate.alerts`) plus ``"text"``, its one-line
summary (the field chat webhooks such as Slack's display). Headers say whose
failure it is without parsing the body: ``X-Drygate-Alert-Category`` (``guard``: the
gate failed and blocks calls; ``agent``: the gate stopped the agent),
``X-Drygate-Alert-Kind`` and ``X-Drygate-Alert-Cause``.
"""

import sys


def webhook_request(payload):
    """The body (bytes) and headers (dict) POSTed for an alert ``payload`` (bytes, JSON).

    A payload that is not a JSON object is sent as it is, with the headers it allows.
    """
    import json

    headers = {"Content-Type": "application/json", "User-Agent": "drygate-alerts"}
    try:
        alert = json.loads(payload)
    except ValueError:
        return payload, headers
    if not isinstance(alert, dict):
        return payload, headers
    for field, header in (("category", "X-Drygate-Alert-Category"), ("kind", "X-Drygate-Alert-Kind"),
                          ("cause", "X-Drygate-Alert-Cause")):
        value = alert.get(field)
        if isinstance(value, str) and value.isascii() and value.isprintable():
            headers[header] = value
    if isinstance(alert.get("summary"), str):
        alert.setdefault("text", alert["summary"])
    return json.dumps(alert).encode("utf-8"), headers


def post_webhook(url, payload, timeout_s=5.0):
    """POST the alert ``payload`` (bytes, JSON) to ``url``; returns the HTTP status (int).

    Body and headers: :func:`webhook_request`. Raises OSError (urllib.error.URLError)
    when the endpoint cannot be reached.
    """
    import urllib.request

    body, headers = webhook_request(payload)
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return resp.status


def main(argv=None):
    """Entry point; returns a process exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "webhook":
        sys.stderr.write("usage: python -m drygate.alert_sinks webhook URL < alert.json\n")
        return 2
    payload = sys.stdin.buffer.read()
    try:
        post_webhook(argv[1], payload)
        return 0
    except Exception as e:
        import json

        from drygate.alerts import _append, fallback_log

        import time

        record = {"ts": time.time(), "kind": "sink_failure", "sink": "webhook", "url": argv[1],
                  "error": str(e)[:200]}
        _append(fallback_log(), (json.dumps(record) + "\n").encode("utf-8"))
        return 1


if __name__ == "__main__":
    sys.exit(main())
