"""Plain column tables for listings that can hold thousands of rows (``drygate runs``, big plans).

rich's ``Table`` measures and wraps every cell as styled text: 10,000 runs took 7.8 s to
print where ``--json`` of the same runs took 0.3 s (bench/cli_listing.py). A listing is
all short, single-line cells, so this module lays them out directly: one pass for the
column widths, one f-string per row, the header in bold when the console is a terminal.
Cells are plain text (agent input is never read as markup), control characters are shown
escaped, and the widest overflowing column is cut with an ellipsis so that a row never
wraps. Tables with long, wrapping cells (a plan's inputs) stay with rich.
"""

_CONTROL = {i: f"\\x{i:02x}" for i in range(32)}
_CONTROL.update({9: "\\t", 10: "\\n", 13: "\\r", 127: "\\x7f"})


def _clean(value):
    """A cell as one line of plain text."""
    return str(value).translate(_CONTROL)


def _widths(headers, rows, width, shrink):
    """The column widths (list of int) for :func:`lines`, from one pass over ``rows``."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            n = len(_clean(cell))
            if n > widths[i]:
                widths[i] = n
    if width is not None:
        excess = sum(widths) + 2 * (len(widths) - 1) - width
        if shrink is None:
            shrink = (max(range(len(widths)), key=widths.__getitem__),)
        elif isinstance(shrink, int):
            shrink = (shrink,)
        for i in shrink:
            if excess <= 0:
                break
            floor = max(len(headers[i]), min(widths[i], 12))
            cut = min(excess, widths[i] - floor)
            widths[i] -= cut
            excess -= cut
    return widths


def lines(headers, rows, *, right=(), width=None, shrink=None):
    """Lay out ``rows`` (a sequence, read twice, of iterables of cells) under ``headers``
    (list of str): yields the header line, then one line (str) per row.

    ``right``: indexes of right-aligned columns. ``width``: the most characters a line may
    take (None: no limit); when the table is wider, the columns ``shrink`` (an index or a
    tuple of indexes, cut in that order, each down to 12 characters or its header; default
    the widest) are cut with "…". Columns are two spaces apart. Only one line is made at a
    time: a table of 100,000 rows costs its rows, not a second copy of them.
    """
    widths = _widths(headers, rows, width, shrink)
    right = set(right)

    def line(cells):
        parts = []
        for i, cell in enumerate(cells):
            cell = _clean(cell)
            w = widths[i]
            if len(cell) > w:
                cell = cell[:w - 1] + "…"
            parts.append(cell.rjust(w) if i in right else cell.ljust(w))
        return "  ".join(parts).rstrip()

    yield line(headers)
    for row in rows:
        yield line(row)


def render(headers, rows, *, right=(), width=None, shrink=None):
    """The lines of :func:`lines` as a list (``rows`` may be any iterable here)."""
    rows = rows if isinstance(rows, (list, tuple)) else list(rows)
    return list(lines(headers, rows, right=right, width=width, shrink=shrink))


def echo_table(console, headers, rows, *, right=(), shrink=None, title=None, caption=None):
    """Print a table made by :func:`lines` on a rich ``console``, cut to the console's width
    (the terminal's, else ``COLUMNS`` or 80 as rich decides); a bold header on a terminal,
    plain text when piped. Written in blocks of 1,000 lines."""
    import sys

    rows = rows if isinstance(rows, (list, tuple)) else list(rows)
    stream = console.file or sys.stdout
    bold = console.is_terminal and not console.no_color
    block = [title] if title else []
    for n, text in enumerate(lines(headers, rows, right=right, shrink=shrink, width=console.width)):
        block.append(f"\x1b[1m{text}\x1b[0m" if n == 0 and bold else text)
        if len(block) >= 1000:
            stream.write("\n".join(block) + "\n")
            block = []
    if caption:
        block.append(caption)
    if block:
        stream.write("\n".join(block) + "\n")
    stream.flush()
