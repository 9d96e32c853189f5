"""Classify HTTP requests: curl, wget, httpie, ``gh api``, and MCP tools that take a URL.

The method decides (RFC 9110, section 9.2.1: GET, HEAD, OPTIONS and TRACE are safe
methods): a safe method is a read, any other method a write. Flags that send a
body imply a method, as each tool's manual says: curl ``-d/--data*/--json/-F``
POST, ``-T/--upload-file`` PUT, ``-G`` turns data into a GET query, ``-I`` HEAD;
wget ``--post-data/--post-file`` POST, ``--method``; httpie data items
(``k=v``, ``k:=json``, ``k@file``) POST unless a method is given. Saving the
response to a file (curl ``-o/-O``, wget without ``-O -``) is a write to the local
disk. The policy can declare a safe-method URL side-effectful
(``[[http_rules]] url_regex = "/v1/jobs/next$"``, case CC-13).
"""

from drygate.classifiers.verdict import Verdict, read, unknown, write

SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))
_HARMLESS = frozenset(("/dev/null", "-", "/dev/stdout", "/dev/stderr"))


def method_verdict(method, urls, ctx, tool):
    """The verdict for an HTTP ``method`` (str) to ``urls`` (list of str/None)."""
    method = (method or "GET").upper()
    if method not in SAFE_METHODS:
        return write(f"{tool}: {method} is not a safe method (RFC 9110), so it changes something")
    for url in urls:
        if url is None:
            return unknown(f"{tool}: the URL is only known at run time")
        effect = url_effect(url, method, ctx)
        if effect is not None:
            return Verdict(effect, f"{tool}: the policy declares {method} {url} {effect}")
    return read(f"{tool}: {method} is a safe method (RFC 9110)")


def url_effect(url, method, ctx):
    """The effect the policy's URL rules give ``method url``, or None.

    ``ctx.http_rules``: tuple of ``(url_regex, methods or None, effect)``.
    """
    rules = getattr(ctx, "http_rules", ()) or ()
    if not rules:
        return None
    import re

    for pattern, methods, effect in rules:
        if methods and method not in methods:
            continue
        if re.search(pattern, url):
            return effect
    return None


def _takes_value(args, i, options):
    return args[i] in options and i + 1 < len(args)


_CURL_VALUES = frozenset((
    "-X", "--request", "-d", "--data", "--data-raw", "--data-binary", "--data-urlencode", "--data-ascii", "--json",
    "-F", "--form", "--form-string", "-T", "--upload-file", "-o", "--output", "-H", "--header", "-u", "--user",
    "-A", "--user-agent", "-e", "--referer", "-b", "--cookie", "-c", "--cookie-jar", "-x", "--proxy", "-m",
    "--max-time", "--connect-timeout", "-w", "--write-out", "-K", "--config", "-D", "--dump-header", "--trace",
    "--trace-ascii", "--url", "-r", "--range", "-E", "--cert", "--key", "--cacert", "--retry", "-y", "-Y",
    "--resolve", "--connect-to", "--output-dir", "-z", "--time-cond", "--limit-rate", "--max-filesize",
    "--stderr", "--variable", "--expand-url", "-U", "--proxy-user", "--oauth2-bearer", "--aws-sigv4",
    "--create-dirs", "--interface", "--local-port", "--netrc-file", "--unix-socket", "--abstract-unix-socket",
))
_CURL_DATA = frozenset(("-d", "--data", "--data-raw", "--data-binary", "--data-urlencode", "--data-ascii", "--json",
                        "-F", "--form", "--form-string"))


def classify_curl(args, ctx):
    """curl's arguments (list of str/None) -> Verdict."""
    method = None
    has_data = upload = get = head = False
    urls = []
    i = 0
    while i < len(args):
        a = args[i]
        if a is None:
            return unknown("curl: an argument known only at run time")
        if a in ("-K", "--config") or a.startswith("--config="):
            return unknown("curl -K reads more options from a file")
        if a.startswith("--") and "=" in a:
            a, value = a.split("=", 1)
            args = args[:i] + [a, value] + args[i + 1:]
        if a in _CURL_VALUES:
            value = args[i + 1] if i + 1 < len(args) else None
            if value is None and i + 1 < len(args):
                return unknown(f"curl {a}: the value is only known at run time")
            if a in ("-X", "--request"):
                method = value
            elif a in _CURL_DATA:
                has_data = True
            elif a in ("-T", "--upload-file"):
                upload = True
            elif a in ("-o", "--output", "-c", "--cookie-jar", "-D", "--dump-header", "--trace", "--trace-ascii",
                       "--stderr"):
                if value not in _HARMLESS:
                    return write(f"curl {a} writes the local file {value!r}")
            elif a == "--url":
                urls.append(value)
            i += 2
            continue
        if a in ("-O", "--remote-name", "--remote-name-all", "-J", "--remote-header-name"):
            return write(f"curl {a} saves the response to a local file")
        if a in ("-G", "--get"):
            get = True
        elif a in ("-I", "--head"):
            head = True
        elif a.startswith("-") and not a.startswith("--") and len(a) > 2:
            # a cluster of short flags: -sSL, -sX POST is written -sX and POST follows
            for j, c in enumerate(a[1:], 1):
                flag = "-" + c
                if flag in ("-O", "-J"):
                    return write(f"curl {a} saves the response to a local file")
                if flag in ("-G",):
                    get = True
                if flag in ("-I",):
                    head = True
                if flag in _CURL_VALUES:
                    value = a[j + 1:] or (args[i + 1] if i + 1 < len(args) else None)
                    if not a[j + 1:]:
                        i += 1
                    if value is None:
                        return unknown(f"curl {flag}: the value is only known at run time")
                    if flag == "-X":
                        method = value
                    elif flag in _CURL_DATA:
                        has_data = True
                    elif flag == "-T":
                        upload = True
                    elif flag in ("-o", "-c", "-D") and value not in _HARMLESS:
                        return write(f"curl {flag} writes the local file {value!r}")
                    break
        elif not a.startswith("-"):
            urls.append(a)
        i += 1
    if method is None:
        if upload:
            method = "PUT"
        elif has_data and not get:
            method = "POST"
        elif head:
            method = "HEAD"
    return method_verdict(method, urls, ctx, "curl")


def classify_wget(args, ctx):
    """wget's arguments -> Verdict. wget saves to a file unless told to write to stdout."""
    method, stdout, spider, urls = None, False, False, []
    i = 0
    while i < len(args):
        a = args[i]
        if a is None:
            return unknown("wget: an argument known only at run time")
        name, _, inline = a.partition("=") if a.startswith("--") else (a, "", "")
        value = inline or (args[i + 1] if i + 1 < len(args) else None)
        step = 1 if inline or not a.startswith("-") else 2
        if name in ("-O", "--output-document"):
            stdout = value in _HARMLESS
            if not stdout:
                return write(f"wget {name} writes the local file {value!r}")
        elif a.startswith("-") and not a.startswith("--") and "O" in a[1:]:
            # -O with its value attached (-O-, -Ofile) or at the end of a cluster (-qO -)
            attached = a[a.index("O", 1) + 1:]
            target = attached or (args[i + 1] if i + 1 < len(args) else None)
            step = 1 if attached else 2
            stdout = target in _HARMLESS
            if not stdout:
                return write(f"wget -O writes the local file {target!r}")
        elif name in ("-o", "--output-file", "-a", "--append-output") and value not in _HARMLESS:
            return write(f"wget {name} writes the log file {value!r}")
        elif name in ("--post-data", "--post-file", "--body-data", "--body-file"):
            method = method or "POST"
        elif name == "--method":
            method = value
        elif name in ("-i", "--input-file", "-e", "--execute", "--config"):
            return unknown(f"wget {name} reads more URLs or commands")
        elif name == "--spider":
            spider, step = True, 1
        elif name in ("-P", "--directory-prefix", "-U", "--user-agent", "--header", "-t", "--tries", "-T",
                      "--timeout", "--user", "--password", "-l", "--level", "-w", "--wait", "-Q", "--quota"):
            pass
        elif a.startswith("-"):
            step = 1
        else:
            urls.append(a)
            step = 1
        i += step
    if not stdout and not spider and (method or "GET").upper() in SAFE_METHODS:
        return write("wget saves the download to a local file (use -O - to print it)")
    v = method_verdict(method, urls, ctx, "wget")
    return v


def classify_httpie(label, args, ctx):
    """httpie (``http``/``https``/``xh``) arguments -> Verdict."""
    method, urls, body = None, [], False
    pos = []
    i = 0
    while i < len(args):
        a = args[i]
        if a is None:
            return unknown(f"{label}: an argument known only at run time")
        if a.startswith("--") and "=" in a:
            name, value = a.split("=", 1)
            args = args[:i] + [name, value] + args[i + 1:]
            a = name
        if a in ("-d", "--download"):
            return write(f"{label} {a} saves the response to a local file")
        if a in ("--session",):
            return write(f"{label} --session writes the session file")
        if a in ("-o", "--output") and i + 1 < len(args) and args[i + 1] not in _HARMLESS:
            return write(f"{label} {a} writes the local file {args[i + 1]!r}")
        if a == "--offline":
            return read(f"{label} --offline builds the request without sending it")
        if a in ("-f", "--form", "--multipart", "--raw"):
            body = True
        elif a in ("-a", "--auth", "-o", "--output", "--session", "--session-read-only", "-A", "--auth-type",
                   "--verify", "--cert", "--cert-key", "--timeout", "--proxy", "--boundary", "-p", "--print",
                   "--pretty", "-s", "--style", "--format-options", "--max-redirects"):
            i += 2
            continue
        elif not a.startswith("-"):
            pos.append(a)
        i += 1
    if pos and pos[0].isalpha() and pos[0].isupper():
        method, pos = pos[0], pos[1:]
    if pos:
        urls.append(pos[0])
        for item in pos[1:]:
            if "==" in item or (":" in item and "=" not in item.split(":", 1)[0] and ":=" not in item):
                continue  # query parameter or header
            if "=" in item or "@" in item:
                body = True
    if method is None:
        method = "POST" if body else "GET"
    return method_verdict(method, urls, ctx, label)


def classify_gh_api(args, ctx):
    """``gh api ENDPOINT`` arguments -> Verdict (GET unless -X, or POST with fields)."""
    method, fields, urls = None, False, []
    i = 0
    while i < len(args):
        a = args[i]
        if a is None:
            return unknown("gh api: an argument known only at run time")
        if a in ("-X", "--method"):
            method = args[i + 1] if i + 1 < len(args) else None
            i += 2
            continue
        if a.startswith("--method="):
            method = a.split("=", 1)[1]
        elif a in ("-f", "--raw-field", "-F", "--field", "--input"):
            fields = True
            i += 2
            continue
        elif a in ("-H", "--header", "-q", "--jq", "-t", "--template", "--hostname", "--cache", "-p", "--preview"):
            i += 2
            continue
        elif not a.startswith("-"):
            urls.append(a)
        i += 1
    if any(u == "graphql" or (u and u.rstrip("/").endswith("/graphql")) for u in urls):
        queries = [a.split("=", 1)[1] for a in args if a and a.startswith("query=")]
        if method is None and queries and not any("mutation" in q for q in queries):
            return read("gh api graphql: a query, no mutation")
        return unknown("gh api graphql: a mutation, or a query this classifier cannot see")
    if method is None:
        method = "POST" if fields else "GET"
    return method_verdict(method, urls, ctx, "gh api")


def classify_url_call(url, method, ctx, tool):
    """For MCP tools that take a URL and a method (policy ``classify = "http"``)."""
    if not isinstance(url, str):
        return unknown(f"{tool}: no URL to classify")
    if method is not None and not isinstance(method, str):
        return unknown(f"{tool}: the method is not a string")
    return method_verdict(method, [url], ctx, tool)


__all__ = ["classify_curl", "classify_gh_api", "classify_httpie", "classify_url_call",
           "classify_wget", "method_verdict", "url_effect"]
