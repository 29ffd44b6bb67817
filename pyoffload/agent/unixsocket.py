"""Unix sockets only their owner reaches, in directories nobody else can change.

The agent's guest channels and its admin endpoint are Unix sockets whose
permissions say who may connect. A socket is bound in a fresh 0700 directory beside
its path, given its owner, group and mode, then renamed into place: it is never
reachable with looser permissions, whatever the umask. The directory it lives in,
and every one above it, must be writable only by root or the agent's user (or
sticky, like /tmp), else someone else could replace the socket with their own.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import grpc

from pyoffload.agent.errors import AgentError


def safe_directory(path: Path, *, follow: bool) -> None:
    """Refuse a directory someone other than root or this process's user could change."""
    st = path.stat() if follow else path.lstat()
    trusted = (0, os.geteuid())
    if st.st_uid not in trusted:
        raise AgentError(grpc.StatusCode.FAILED_PRECONDITION,
                         f"{path} belongs to uid {st.st_uid}, who could replace the "
                         "socket; use a directory of root's")
    if stat.S_ISLNK(st.st_mode):
        return
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise AgentError(grpc.StatusCode.FAILED_PRECONDITION,
                         f"{path} is writable by {'others' if st.st_mode & 0o002 else 'its group'}"
                         f" (mode {stat.S_IMODE(st.st_mode):04o}), who could replace the "
                         "socket; use a directory only root can write to")


def private_directory(socket_path: Path) -> Path:
    """A fresh 0700 directory beside ``socket_path`` to bind in, after checking that the
    socket's directory (created 0755 if missing) and those above it are safe."""
    parent = socket_path.parent.absolute()
    if not parent.exists():
        parent.mkdir(mode=0o755, parents=True)
        parent.chmod(0o755)  # whatever the umask
    for directory in (parent, *parent.parents):
        safe_directory(directory, follow=False)
    resolved = parent.resolve()
    for directory in (resolved, *resolved.parents):
        safe_directory(directory, follow=True)
    if socket_path.exists() and not socket_path.is_socket():
        raise AgentError(grpc.StatusCode.FAILED_PRECONDITION,
                         f"{socket_path} exists and is not a socket; not replacing it")
    return Path(tempfile.mkdtemp(prefix=".sock", dir=parent))


def publish_socket(bound: Path, path: Path, *, owner: int | None = None,
                   group: int | None = None, mode: int = 0o600) -> tuple[int, int]:
    """Give the socket bound in the private directory its owner, group and mode, then
    move it into place (replacing a stale socket) and drop the directory."""
    try:
        os.chown(bound, -1 if owner is None else owner, -1 if group is None else group)
        os.chmod(bound, mode)
        os.rename(bound, path)
        st = path.lstat()
        return st.st_dev, st.st_ino
    except OSError as exc:
        raise AgentError(grpc.StatusCode.UNAVAILABLE,
                         f"cannot set up the socket {path}: {exc.strerror}") from None
    finally:
        shutil.rmtree(bound.parent, ignore_errors=True)


def remove_socket(path: Path, ident: tuple[int, int]) -> None:
    """Remove the socket at ``path`` if it is still the one published as ``ident``
    (device, inode): a newer server's socket there is left alone."""
    try:
        st = path.lstat()
    except OSError:
        return
    if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == ident:
        path.unlink()
