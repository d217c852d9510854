"""Every file name of the index as one lower-cased text, for base-name lookups without a name map.

A name lookup (`ModelIndex.find_by_basename`) in a new process is usually one of a few. A map over
every file costs a pass over all of them; instead the names of all directories are one text,
"\0"-separated and lower-cased, searched in C (`find`), with a bisect per hit to find its directory.

* `NameText` builds that text from the listings in memory (one join, one `lower()`).
* `SavedText` is the same text as the index cache saved it (`saved_form`): a new process reads it with
  one `read()` on its first lookup, with no per-directory decoding, join or lower-casing. It is written
  only when every name is ASCII (lower-casing other names can change their length, and with it the
  offsets); otherwise lookups build a `NameText` or the caller's name map.
"""
from __future__ import annotations

import bisect
import os
from pathlib import Path
from typing import Iterable

SEP = "\0"


class NameText:
    """The names of `listings` ((directory, "\0"-joined names) pairs) as one lower-cased text."""

    def __init__(self, listings: Iterable[tuple[str, str]]) -> None:
        self.dirs: list[str] = []
        self.starts: list[int] = []  # where each directory's names start in the text
        parts: list[str] = []
        pos = 1
        for d, files in listings:
            if files:
                self.dirs.append(d)
                self.starts.append(pos)
                parts.append(files)
                pos += len(files) + 1
        raw = SEP + SEP.join(parts) + SEP
        self.ascii = raw.isascii()
        self.text = raw.lower() if self.ascii else ""
        self.raw = raw

    def find(self, needle: str) -> list[str] | None:
        """Paths of the files named `needle` (lower-case), or None when the names are not ASCII."""
        if not self.ascii:
            return None
        key = SEP + needle + SEP
        out: list[str] = []
        i = self.text.find(key)
        while i != -1:
            k = bisect.bisect_right(self.starts, i + 1) - 1
            out.append(os.path.join(self.dirs[k], self.raw[i + 1:i + 1 + len(needle)]))
            i = self.text.find(key, i + len(key) - 1)
        return out


def saved_form(token: bytes, names: NameText) -> tuple[bytes, tuple[list[str], list[int], int]] | None:
    """`names` as `SavedText` reads it: the file's bytes (`token`, the lower-cased text, then the text
    as listed, for the names' own case) and what the cache's structure keeps to read it back
    (directories, their starts, the text's length). None when the names are not ASCII."""
    if not names.ascii:
        return None
    lower = names.text.encode("ascii")
    return token + lower + names.raw.encode("ascii"), (names.dirs, names.starts, len(lower))


class SavedText:
    """A `NameText` saved in its `saved_form`, read on the first lookup. `find` returns None when the file
    is gone or belongs to another save (its token differs): the caller then builds a `NameText`."""

    def __init__(self, path: Path, token: bytes, dirs: list[str], starts: list[int], size: int) -> None:
        self.path, self.token, self.dirs, self.starts, self.size = path, token, dirs, starts, size
        self.text: bytes | None = None
        self.usable = True

    def _load(self) -> bool:
        try:
            with open(self.path, "rb") as f:
                if f.read(len(self.token)) != self.token:
                    return False
                text = f.read(self.size)
        except OSError:
            return False
        if len(text) != self.size:
            return False
        self.text = text
        return True

    def find(self, needle: str) -> list[str] | None:
        if not needle.isascii():
            return None
        if not self.usable or (self.text is None and not self._load()):
            self.usable = False
            return None
        text = self.text
        assert text is not None
        key = (SEP + needle + SEP).encode("ascii")
        hits: list[int] = []
        i = text.find(key)
        while i != -1:
            hits.append(i + 1)
            i = text.find(key, i + len(key) - 1)
        if not hits:
            return []
        out: list[str] = []
        raw_at = len(self.token) + self.size  # the names in their own case follow the lower-cased text
        try:
            with open(self.path, "rb") as f:
                if f.read(len(self.token)) != self.token:  # replaced since the first lookup
                    self.usable = False
                    return None
                for start in hits:
                    k = bisect.bisect_right(self.starts, start) - 1
                    f.seek(raw_at + start)
                    out.append(os.path.join(self.dirs[k], f.read(len(key) - 2).decode("ascii")))
        except (OSError, UnicodeDecodeError):
            self.usable = False
            return None
        return out
