"""Move a model file found in the wrong folder into the folder its loader reads (the sidebar's Move).

The same rules as the last step of a download:

* the destination comes from `paths.target_path` (a safe relative name, inside the folder's real
  directory, no link under its name or its part file's), and program files are refused;
* a file already under the destination name is never overwritten (TargetExists);
* the file appears under its new name atomically: a hard link (which fails if the name is taken) and
  then the old name removed, so there is never a moment with neither name nor half a file. Across
  file systems the bytes are copied into a part file (never through a link), checked by size,
  renamed into place the same way, and only then is the original removed.

The source must be a regular file that the local index lists inside a model folder, reached without
any symbolic link: the move never takes a file from anywhere else.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass

from ..errors import DownloadError, TargetExists, UnsafePath
from ..index.layout import FolderLayout
from ..workflow.folders import is_code_file
from .partfile import open_no_follow
from .containment import check_writes
from .paths import PART_SUFFIX, target_path

__all__ = ["Moved", "move_model_file"]


@dataclass(frozen=True)
class Moved:
    source: str
    target: str
    folder: str
    filename: str
    size: int

    def to_dict(self) -> dict:
        return {"from": self.source, "to": self.target, "folder": self.folder, "filename": self.filename,
                "size": self.size}


def _check_source(path: str, where: tuple[str, str, str] | None) -> os.stat_result:
    if where is None:
        raise UnsafePath(f"{path} is not a model file in one of ComfyUI's model folders.",
                         hint="Analyze the workflow again; only files the resolver found can be moved.")
    _folder, base, rel = where
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise DownloadError(f"{path} is no longer there.", hint="Analyze the workflow again.") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise UnsafePath(f"{path} is a link or not a regular file; move it yourself if you mean to.")
    expected = os.path.join(os.path.realpath(base), *rel.split("/"))
    if os.path.realpath(path) != expected:
        raise UnsafePath(f"{path} is reached through a symbolic link; the resolver only moves files stored "
                         "in the model folder itself.")
    return st


def _link_into_place(src: str, final: str, name: str) -> None:
    try:
        os.link(src, final)
    except FileExistsError:
        raise TargetExists(f"{final} already exists; it is never overwritten.",
                           hint=f"Remove or rename the file in the way, or relink the workflow to it instead of moving {name}.") from None


def _copy_into_place(src: str, final: str, size: int, name: str) -> None:
    part = final + PART_SUFFIX
    if os.path.lexists(part):
        raise TargetExists(f"{part} exists (a download of this file may be running).",
                           hint="Wait for it to finish, or remove the part file.")
    fd = open_no_follow(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with os.fdopen(fd, "wb", closefd=True) as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        if os.path.getsize(part) != size:
            raise DownloadError(f"Copying {name} wrote {os.path.getsize(part)} of {size} bytes.",
                                hint="Check the free space on the models disk.")
        _link_into_place(part, final, name)
    finally:
        try:
            os.unlink(part)
        except FileNotFoundError:
            pass


def move_model_file(layout: FolderLayout, where: tuple[str, str, str] | None, path: str, folder: str,
                    filename: str) -> Moved:
    """Move the file at `path` (`where` = the index's (folder, base, relative path) for it) to
    `folder`/`filename`. Blocking: call it from a worker thread."""
    if is_code_file(filename):
        raise UnsafePath(f"{filename} is a program file, not a model; the resolver never places code.")
    st = _check_source(path, where)
    final = target_path(layout, folder, filename)
    if os.path.realpath(final) == os.path.realpath(path):
        raise TargetExists(f"{path} is already where the workflow looks for it.")
    if os.path.lexists(final):
        raise TargetExists(f"{final} already exists; it is never overwritten.",
                           hint="Remove or rename the file in the way, or relink the workflow to it.")
    # the new name is written and the old one deleted: both inside the write roots, links resolved now
    check_writes(layout, final, path, what="Moving a model file")
    os.makedirs(os.path.dirname(final), exist_ok=True)
    name = os.path.basename(final)
    try:
        _link_into_place(path, final, name)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise DownloadError(f"Could not move {name}: {exc.strerror or exc}.",
                                hint="Check that the models folder is writable.") from None
        _copy_into_place(path, final, st.st_size, name)
    os.unlink(path)
    return Moved(source=path, target=final, folder=folder, filename=filename.replace("\\", "/"), size=st.st_size)
