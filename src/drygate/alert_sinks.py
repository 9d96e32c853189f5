"""Detached alert delivery: ``python -m drygate.alert_sinks webhook URL`` < alert.json.

Runs in its own process (started by :func:`drygate.alerts.emit`) so a slow or dead
endpoint never delays a decision. Uses the standard library's ``urllib`` (no extra
dependency on the hook's machine). Delivery failures are appended to the fallback
alert log.
"""

import sys


def post_webhook(url, payload, timeout_s=5.0):
    """POST ``payload`` (bytes, JSON) to ``url``; returns the HTTP status (int).

    Raises OSError (urllib.error.URLError) when the endpoint cannot be reached.
    """
    import urllib.request

    req = urllib.request.Request(url, data=payload, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "drygate-alerts"})
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

        record = {"kind": "sink_failure", "sink": "webhook", "url": argv[1], "error": str(e)[:200]}
        _append(fallback_log(), (json.dumps(record) + "\n").encode("utf-8"))
        return 1


if __name__ == "__main__":
    sys.exit(main())
