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


#: curl options this classifier understands (curl 8 manual). Any other option is unknown.
_CURL_FLAGS = frozenset((
    "-s", "--silent", "-S", "--show-error", "-L", "--location", "-f", "--fail", "--fail-with-body", "-k",
    "--insecure", "-v", "--verbose", "-i", "--include", "-I", "--head", "-G", "--get", "-N", "--no-buffer",
    "--compressed", "-g", "--globoff", "--http1.0", "--http1.1", "--http2", "--http2-prior-knowledge", "--http3",
    "-#", "--progress-bar", "--no-progress-meter", "-4", "-6", "--ipv4", "--ipv6", "-n", "--netrc",
    "--netrc-optional", "--location-trusted", "--raw", "--path-as-is", "--ssl-reqd", "--tlsv1.2", "--tlsv1.3",
    "--retry-all-errors", "--retry-connrefused", "--fail-early", "--create-dirs", "-V", "--version", "-h", "--help",
    "--no-keepalive", "--no-sessionid", "--anyauth", "--basic", "--digest", "--ntlm", "--negotiate", "-p",
    "--proxytunnel", "-O", "--remote-name", "--remote-name-all", "-J", "--remote-header-name", "-R",
    "--remote-time", "-j", "--junk-session-cookies", "-Z", "--parallel", "-q", "--disable", "--styled-output",
    "--tcp-nodelay", "--tcp-fastopen", "--false-start", "--no-alpn", "--no-npn", "--ssl-no-revoke", "--http0.9",
))
_CURL_VALUES = frozenset((
    "-X", "--request", "-d", "--data", "--data-raw", "--data-binary", "--data-urlencode", "--data-ascii", "--json",
    "-F", "--form", "--form-string", "-T", "--upload-file", "-o", "--output", "-H", "--header", "-u", "--user",
    "-A", "--user-agent", "-e", "--referer", "-b", "--cookie", "-c", "--cookie-jar", "-x", "--proxy", "-m",
    "--max-time", "--connect-timeout", "-w", "--write-out", "-D", "--dump-header", "--trace", "--trace-ascii",
    "--url", "-r", "--range", "-E", "--cert", "--key", "--cacert", "--capath", "--retry", "--retry-delay",
    "--retry-max-time", "--resolve", "--connect-to", "--output-dir", "-z", "--time-cond", "--limit-rate",
    "--max-filesize", "--max-redirs", "--stderr", "-U", "--proxy-user", "--oauth2-bearer", "--aws-sigv4",
    "--interface", "--unix-socket", "--abstract-unix-socket", "--url-query", "--proto", "--proto-redir",
    "--proto-default", "--etag-save", "--etag-compare", "--hsts", "--alt-svc", "--libcurl", "--dns-servers",
    "--cert-type", "--key-type", "--ciphers", "--pinnedpubkey", "--local-port", "-Y", "--speed-limit", "-y",
    "--speed-time", "--keepalive-time", "--happy-eyeballs-timeout-ms", "--expect100-timeout", "--request-target",
))
_CURL_DATA = frozenset(("-d", "--data", "--data-raw", "--data-binary", "--data-urlencode", "--data-ascii", "--json",
                        "-F", "--form", "--form-string"))
#: Options that write a local file (unless the file is stdout or /dev/null).
_CURL_FILE_WRITES = frozenset(("-o", "--output", "-c", "--cookie-jar", "-D", "--dump-header", "--trace",
                               "--trace-ascii", "--stderr", "--etag-save", "--hsts", "--alt-svc", "--libcurl"))
_WEB_SCHEMES = ("http://", "https://")


def _url_ok(url):
    """True for an http(s) URL or a bare host (curl's default scheme is http)."""
    low = url.lower()
    return low.startswith(_WEB_SCHEMES) or "://" not in low


def classify_curl(args, ctx):
    """curl's arguments (list of str/None) -> Verdict. Only http(s) and the options above
    are understood; other protocols (gopher, telnet, ftp, smtp, dict, file) and other
    options are unknown."""
    method = None
    has_data = upload = get = head = False
    urls = []
    i = 0
    while i < len(args):
        a = args[i]
        if a is None:
            return unknown("curl: an argument known only at run time")
        if a in ("-K", "--config") or a.startswith("--config=") or a == "--next" or a == ":":
            return unknown(f"curl {a}: more options or requests this classifier does not read")
        if a.startswith("--") and "=" in a:
            name, value = a.split("=", 1)
            pairs, step = [(name, value)], 1
        elif a.startswith("-") and not a.startswith("--") and len(a) > 2:
            pairs, step = [], 1
            for j, c in enumerate(a[1:], 1):
                flag = "-" + c
                if flag in _CURL_VALUES:
                    value = a[j + 1:] or (args[i + 1] if i + 1 < len(args) else None)
                    if not a[j + 1:]:
                        step = 2
                    pairs.append((flag, value))
                    break
                if flag not in _CURL_FLAGS:
                    return unknown(f"curl {a}: an option this classifier does not read")
                pairs.append((flag, None))
        elif a.startswith("-") and a != "-":
            if a in _CURL_VALUES:
                pairs, step = [(a, args[i + 1] if i + 1 < len(args) else None)], 2
            else:
                pairs, step = [(a, None)], 1
        else:
            if not _url_ok(a):
                return unknown(f"curl {a}: a protocol other than HTTP, whose effect is not known here")
            urls.append(a)
            i += 1
            continue
        for flag, value in pairs:
            if flag not in _CURL_FLAGS and flag not in _CURL_VALUES:
                return unknown(f"curl {flag}: an option this classifier does not read")
            if flag in _CURL_VALUES and value is None:
                return unknown(f"curl {flag}: the value is only known at run time")
            if flag in ("-O", "--remote-name", "--remote-name-all", "-J", "--remote-header-name"):
                return write(f"curl {flag} saves the response to a local file")
            if flag in _CURL_FILE_WRITES and value not in _HARMLESS:
                return write(f"curl {flag} writes the local file {value!r}")
            if flag in ("-w", "--write-out") and "%output{" in value:
                return write("curl -w %output{...} writes a local file")
            if flag in ("-X", "--request"):
                method = value
            elif flag in _CURL_DATA:
                has_data = True
            elif flag in ("-T", "--upload-file"):
                upload = True
            elif flag in ("-G", "--get"):
                get = True
            elif flag in ("-I", "--head"):
                head = True
            elif flag == "--url":
                if not _url_ok(value):
                    return unknown(f"curl --url {value}: a protocol other than HTTP")
                urls.append(value)
            elif flag in ("-H", "--header") and value.lower().replace(" ", "").startswith(
                    ("x-http-method-override:", "x-http-method:", "x-method-override:")):
                method = value.split(":", 1)[1].strip() or method
        i += step
    if method is None:
        if upload:
            method = "PUT"
        elif has_data and not get:
            method = "POST"
        elif head:
            method = "HEAD"
    return method_verdict(method, urls, ctx, "curl")


#: wget options (GNU wget 1.21 manual); long options may be abbreviated, as getopt allows.
_WGET_FLAGS = frozenset((
    "-q", "--quiet", "-v", "--verbose", "-nv", "--no-verbose", "-S", "--server-response", "--spider",
    "--no-check-certificate", "-4", "-6", "--inet4-only", "--inet6-only", "--no-cache", "--no-cookies",
    "--ignore-length", "--content-disposition", "-nc", "--no-clobber", "-N", "--timestamping", "-c", "--continue",
    "--show-progress", "--no-dns-cache", "--https-only", "--no-proxy", "--auth-no-challenge", "--compression",
    "--keep-session-cookies", "-V", "--version", "-h", "--help", "-x", "--force-directories",
    "-nd", "--no-directories", "-k", "--convert-links", "-r", "--recursive", "-np", "--no-parent",
    "-p", "--page-requisites", "-m", "--mirror", "-b", "--background",
))
_WGET_VALUES = frozenset((
    "-O", "--output-document", "-o", "--output-file", "-a", "--append-output", "-U", "--user-agent", "--header",
    "-t", "--tries", "-T", "--timeout", "--user", "--password", "-e", "--execute", "-i", "--input-file",
    "--method", "--post-data", "--post-file", "--body-data", "--body-file", "-P", "--directory-prefix", "-w",
    "--wait", "-Q", "--quota", "--max-redirect", "--limit-rate", "--referer", "--load-cookies", "--save-cookies",
    "--warc-file", "--config", "-l", "--level", "--ca-certificate", "--certificate", "--private-key",
    "--connect-timeout", "--read-timeout", "--dns-timeout", "--waitretry", "-B", "--base",
))


def _gnu_long(name, known):
    """The known long option that ``name`` names exactly or abbreviates, or None."""
    if name in known:
        return name
    matches = [o for o in known if o.startswith("--") and o.startswith(name)]
    return matches[0] if len(matches) == 1 and len(name) > 2 else None


def classify_wget(args, ctx):
    """wget's arguments -> Verdict. wget saves to a file unless told to write to stdout."""
    method, stdout, spider, writes_files, urls = None, False, False, False, []
    known = _WGET_FLAGS | _WGET_VALUES
    i = 0
    while i < len(args):
        a = args[i]
        if a is None:
            return unknown("wget: an argument known only at run time")
        if a.startswith("--"):
            name, eq, inline = a.partition("=")
            option = _gnu_long(name, known)
            if option is None:
                return unknown(f"wget {a}: an option this classifier does not read")
            value = inline if eq else (args[i + 1] if i + 1 < len(args) and option in _WGET_VALUES else None)
            step = 1 if (eq or option not in _WGET_VALUES) else 2
        elif a.startswith("-") and a != "-":
            if a in known:
                option = a
                value = args[i + 1] if a in _WGET_VALUES and i + 1 < len(args) else None
                step = 2 if a in _WGET_VALUES else 1
            else:
                # a cluster such as -qO- or -qO /tmp/f: flags, then at most one option with a value
                option, value, step = None, None, 1
                for j, c in enumerate(a[1:], 1):
                    flag = "-" + c
                    if flag in _WGET_VALUES:
                        option = flag
                        value = a[j + 1:] or (args[i + 1] if i + 1 < len(args) else None)
                        step = 1 if a[j + 1:] else 2
                        break
                    if flag not in _WGET_FLAGS:
                        return unknown(f"wget {a}: an option this classifier does not read")
                if option is None:
                    i += 1
                    continue
        else:
            if not _url_ok(a):
                return unknown(f"wget {a}: a protocol other than HTTP")
            urls.append(a)
            i += 1
            continue
        if option in ("-O", "--output-document"):
            stdout = value in _HARMLESS
            if not stdout:
                return write(f"wget -O writes the local file {value!r}")
        elif option in ("-o", "--output-file", "-a", "--append-output", "--save-cookies", "--warc-file"):
            if value not in _HARMLESS:
                return write(f"wget {option} writes the file {value!r}")
        elif option in ("--post-data", "--post-file", "--body-data", "--body-file"):
            method = method or "POST"
        elif option == "--method":
            method = value
        elif option in ("-e", "--execute", "-i", "--input-file", "--config", "-B", "--base"):
            return unknown(f"wget {option} reads more URLs or commands")
        elif option == "--spider":
            spider = True
        elif option in ("-r", "--recursive", "-m", "--mirror", "-p", "--page-requisites", "-k", "--convert-links",
                        "-b", "--background", "-x", "--force-directories"):
            writes_files = True
        i += step
    if writes_files and not spider:
        return write("wget downloads (recursively or in the background) into local files")
    if not stdout and not spider:
        return write("wget saves the download to a local file (use -O - to print it)")
    return method_verdict(method, urls, ctx, "wget")


_HTTPIE_FLAGS = frozenset(("-f", "--form", "--multipart", "--raw", "-j", "--json", "-b", "--body", "-h",
                           "--headers", "-v", "--verbose", "-q", "--quiet", "-F", "--follow", "-S", "--stream",
                           "-I", "--ignore-stdin", "--check-status", "--all", "--offline", "--pretty", "-x",
                           "--compress", "--chunked", "--ignore-netrc", "--version", "--help", "-m", "--meta",
                           "--unsorted", "--sorted", "--response-charset", "--response-mime"))
_HTTPIE_VALUES = frozenset(("-a", "--auth", "-A", "--auth-type", "--verify", "--cert", "--cert-key", "--timeout",
                            "--proxy", "--boundary", "-p", "--print", "-P", "--history-print", "-s", "--style",
                            "--format-options", "--max-redirects", "--max-headers", "--session-read-only",
                            "--default-scheme", "--path-as-is", "--ssl", "--ciphers", "--cert-key-pass"))


def classify_httpie(label, args, ctx):
    """httpie (``http``/``https``/``xh``) arguments -> Verdict.

    Data items (``k=v``, ``k:=json``, ``k@file``, ``k=@file``) and input on stdin
    make it a POST unless a method is given; the method is case-insensitive."""
    method, urls, body = None, [], isinstance(ctx.stdin, str) or ctx.stdin is False
    pos = []
    i = 0
    while i < len(args):
        a = args[i]
        if a is None:
            return unknown(f"{label}: an argument known only at run time")
        name, eq, inline = a.partition("=") if a.startswith("--") else (a, "", "")
        if a.startswith("-") and a != "-":
            if name in ("-d", "--download", "-o", "--output", "--session", "-c", "--continue"):
                target = inline if eq else (args[i + 1] if i + 1 < len(args) else None)
                if name in ("-o", "--output") and target in _HARMLESS:
                    i += 1 if eq else 2
                    continue
                return write(f"{label} {name} writes a local file")
            if name == "--offline":
                return read(f"{label} --offline builds the request without sending it")
            if name in ("-I", "--ignore-stdin"):
                body = False
            if name in ("-f", "--form", "--multipart", "--raw"):
                body = True
            if name in _HTTPIE_VALUES:
                i += 1 if eq else 2
                continue
            if name in _HTTPIE_FLAGS:
                i += 1
                continue
            return unknown(f"{label} {a}: an option this classifier does not read")
        pos.append(a)
        i += 1
    if pos and pos[0].isalpha() and pos[0].upper() in ("GET", "HEAD", "OPTIONS", "TRACE", "POST", "PUT", "PATCH",
                                                         "DELETE", "CONNECT", "PROPFIND", "MKCOL", "COPY", "MOVE"):
        method, pos = pos[0].upper(), pos[1:]
    elif pos and pos[0].isalpha() and len(pos) > 1:
        return unknown(f"{label} {pos[0]}: a method this classifier does not know")
    if pos:
        if not _url_ok(pos[0]) and not pos[0].startswith(":"):
            return unknown(f"{label} {pos[0]}: a protocol other than HTTP")
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
    """``gh api ENDPOINT`` arguments -> Verdict (GET unless -X, or POST with fields or --input)."""
    method, fields, urls, queries = None, False, [], []
    values = ("-H", "--header", "-q", "--jq", "-t", "--template", "--hostname", "--cache", "-p", "--preview")
    flags = ("--paginate", "--slurp", "-i", "--include", "--silent", "--verbose")
    i = 0
    while i < len(args):
        a = args[i]
        if a is None:
            return unknown("gh api: an argument known only at run time")
        name, eq, inline = a.partition("=") if a.startswith("--") else (a[:2], "", a[2:])
        if not a.startswith("-"):
            urls.append(a)
            i += 1
            continue
        value = inline if (eq or inline) else (args[i + 1] if i + 1 < len(args) else None)
        step = 1 if (eq or inline) else 2
        if name in ("-X", "--method"):
            method = value
        elif name in ("-f", "--raw-field", "-F", "--field", "--input"):
            fields = True
            if value and value.startswith("query="):
                queries.append(value[len("query="):])
        elif a in values or name in values:
            pass
        elif a in flags:
            step = 1
        else:
            return unknown(f"gh api {a}: an option this classifier does not read")
        i += step
    if any(u == "graphql" or (u and u.rstrip("/").endswith("/graphql")) for u in urls):
        if method is None and queries and not any("mutation" in q or q.startswith("@") for q in queries):
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
