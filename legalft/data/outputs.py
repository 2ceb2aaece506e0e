"""Output files that never touch an input and never end half-written.

Every file the dataset pipeline writes goes through here: the paths are checked before anything is
opened for writing (an output that is an input, or the other output, is a usage error), and each
file is written to a temporary file beside its target and renamed into place when complete, so an
interrupted run leaves the previous output intact and a concurrent reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from legalft.errors import UsageError


class OutputPathError(UsageError):
    """An output path that would overwrite an input or another output, or that cannot be a file."""

    kind = "output_path"


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name one file: the same resolved path, or the same inode (a hard link)."""
    a, b = Path(a), Path(b)
    try:
        if a.resolve() == b.resolve():
            return True
    except (OSError, RuntimeError):  # a symlink loop: compare what can be compared
        if os.path.abspath(a) == os.path.abspath(b):
            return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(inputs: dict[str, str | Path], outputs: dict[str, str | Path | None]) -> None:
    """Refuse, before anything is written, an output that is an input, another output, or a folder.

    ``inputs`` and ``outputs`` map a label the user knows ("the input", "--rejects") to a path.
    """
    named = [(label, Path(path)) for label, path in outputs.items() if path is not None]
    for label, path in named:
        for in_label, source in inputs.items():
            if same_file(path, source):
                raise OutputPathError(f"{label} ({path}) is {in_label}: writing it would destroy it; choose another path")
        if path.is_dir():
            raise OutputPathError(f"{label} ({path}) is a folder: name a file to write")
    for index, (label, path) in enumerate(named):
        for other_label, other in named[index + 1:]:
            if same_file(path, other):
                raise OutputPathError(f"{label} and {other_label} are the same file ({path}): give them different paths")


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Write ``path`` through a temporary file beside it, renamed into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        # mkstemp makes the file private; the output keeps the target's mode, else an ordinary file's.
        try:  # (another writer of the same output may remove it meanwhile: then it is a new file)
            mode_bits = path.stat().st_mode & 0o777 if path.is_file() else 0o644
        except FileNotFoundError:
            mode_bits = 0o644
        os.chmod(tmp, mode_bits)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": "\n"})) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` whole or not at all."""
    with atomic_output(path, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
