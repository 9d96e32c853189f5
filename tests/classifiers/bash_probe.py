"""Run a snippet with the real bash in a throwaway folder and see whether it created ``pwn``.

Used to prove that each member of a class really runs code (so the class lists are
bash's behaviour, not guesses), and by the hook tests as the host that runs an allowed
command.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

BASH = shutil.which("bash")
#: A variable name whose subscript runs ``touch pwn`` when bash evaluates it.
P = "a[$(touch pwn)]"


def runs_code(snippet, folder=None, timeout=10):
    """True if bash running ``snippet`` (stdin empty) in ``folder`` (a fresh one if None)
    created the file ``pwn`` there."""
    own = folder is None
    folder = Path(tempfile.mkdtemp(prefix="drygate-bash-")) if own else Path(folder)
    try:
        subprocess.run([BASH, "-c", snippet], cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=timeout)
        return (folder / "pwn").exists()
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)
