"""Directories malt writes, and the manifest that says which of their files are malt's.

Every directory malt creates for its results (a run, a study, a simulated or attributed data
set, a demo, a cache) holds `.malt-manifest.json`: the kind of output and the paths malt wrote
in it. Malt deletes only files a manifest lists (or temporaries of them); it refuses to write
into a non-empty directory that is not its own, and refuses to replace its own output while
anything else lies in it. A directory with a manifest inside another one is its own output
(the runs of a study, the data set of a demo) and answers for its own files.

Symbolic links are never malt's (malt writes none, and never follows one when it deletes), nor
is an empty directory no manifest accounts for: both count as the user's, like their files.

Three ways to write, each holding the output's lock (`malt.locks`) so that one process at a
time writes it:
- `OutputDir`: a long-lived directory written file by file (a run, a study); each file is
  recorded in the manifest before it is written, so an interrupted write is still recognised.
- `staged_output`: a data set built whole in a hidden sibling directory and renamed into place
  when complete, so a command killed at any point leaves the previous output or none.
- `single_file_output`: a file the user names (a prediction, an export); an existing one is
  replaced only with `overwrite` and only when malt wrote it (each such file records so).
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import posixpath
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from malt.errors import ConfigError, os_error_reason, os_errors_as
from malt.host import pid_alive
from malt.locks import LOCK_FILE, held_by, lock_beside, lock_inside, output_lock

MANIFEST = ".malt-manifest.json"
EVERYTHING = "**"
"""Entry of a manifest whose directory is malt's whole (a cache)."""
DATA_KIND = "data"
"""Kind of every data set malt writes (simulated, attributed, converted)."""
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.tmp-(?:.+-)?\d+")
_SIBLING = re.compile(r"\.(?P<name>.+)\.malt-(?P<role>staging|old)-(?P<pid>\d+)")
_SHOWN = 5


def process_tag() -> str:
    """`<host>-<pid>`: names this process's temporaries apart from those of processes on other
    machines writing into the same shared directory (their process ids may be the same)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def tagged_process_ended(tag: str) -> bool:
    """Whether the process a `process_tag` names (a bare pid: this machine's) has ended.
    Another machine's processes cannot be checked: False for them."""
    host, _, pid = tag.rpartition("-")
    if host and host != socket.gethostname():
        return False
    return not pid.isdigit() or not pid_alive(int(pid))


def temporary_path(path: Path) -> Path:
    """The name a file is written under before it is renamed to `path`."""
    return path.with_name(f".{path.name}.tmp-{process_tag()}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary)` and rename the result to `path`: readers see the old file or
    the whole new one, never a part. An operating-system error is a `ConfigError` naming
    `path`."""
    with os_errors_as(path, action="write"):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(path)
        try:
            write(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file atomically (see `atomic_write`)."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


@dataclass(frozen=True)
class Manifest:
    """What malt wrote in one directory: its kind and the relative paths (or patterns)."""

    kind: str
    entries: tuple[str, ...] = ()

    def lists(self, relative: str) -> bool:
        """Whether the file at `relative` (posix, below the manifest's directory) is malt's:
        listed, matched by a pattern, or a temporary of a listed file."""
        if EVERYTHING in self.entries:
            return True
        names = [relative]
        temporary = _TEMPORARY.fullmatch(posixpath.basename(relative))
        if temporary:
            names.append(posixpath.join(posixpath.dirname(relative), temporary["name"]))
        return any(fnmatch.fnmatchcase(n, e) for n in names for e in self.entries)

    def holds_directory(self, relative: str) -> bool:
        """Whether the directory at `relative` is malt's: listed itself, or on the way to a
        listed path (malt records a file before it writes it, so a directory malt made to hold
        one is accounted for)."""
        ancestors = {a for e in self.entries for a in _ancestors(e)}
        return any(fnmatch.fnmatchcase(relative, a) for a in (*self.entries, *ancestors))


def _ancestors(relative: str) -> Iterator[str]:
    parent = posixpath.dirname(relative)
    while parent:
        yield parent
        parent = posixpath.dirname(parent)


def read_manifest(directory: Path) -> Manifest | None:
    """The manifest of `directory`, or None when there is none (or it is not malt's)."""
    try:
        raw = json.loads((Path(directory) / MANIFEST).read_text())
        return Manifest(kind=str(raw["kind"]), entries=tuple(raw["entries"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_manifest(directory: Path, manifest: Manifest) -> None:
    atomic_write_text(directory / MANIFEST, json.dumps(
        {"kind": manifest.kind, "entries": sorted(manifest.entries)}, indent=1, allow_nan=False))


def mark_whole(directory: Path, kind: str, *, adopt: bool = False) -> None:
    """Make `directory` an output that is malt's whole, such as a cache: created with its
    manifest when absent or empty, kept when it already is one. A directory without a manifest
    that holds anything is refused (`ConfigError`), unless `adopt` (it is malt's by its name)."""
    directory = Path(directory)
    output = OutputDir(directory, kind)
    if not (adopt and output.manifest is None):
        output.check_writable(keep=True)
    directory.mkdir(parents=True, exist_ok=True)
    if output.manifest is None:
        _write_manifest(directory, Manifest(kind, (EVERYTHING,)))


def foreign_files(directory: Path) -> list[Path]:
    """What under `directory` malt did not write: files that no manifest in or above them (up
    to `directory`) lists, symbolic links, and empty directories no manifest accounts for;
    every file when `directory` has no manifest. Lock files of malt's outputs are malt's."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    foreign = []
    scopes: dict[str, tuple[str, Manifest | None]] = {}
    for top, dirs, files in os.walk(directory):
        dirs.sort()
        own = read_manifest(Path(top)) if MANIFEST in files else None
        parent = scopes.get(os.path.dirname(top))
        scope = (top, own) if own is not None else \
            parent if parent is not None else (top, None)
        scopes[top] = scope
        root, manifest = scope
        for name in list(dirs):  # os.walk lists a link to a directory here, and skips it
            path = Path(top) / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink() or (not any(path.iterdir()) and (
                    manifest is None or not manifest.holds_directory(relative))):
                foreign.append(path)
        for name in sorted(files):
            if name == MANIFEST and own is not None:
                continue
            path = Path(top) / name
            if LOCK_FILE.fullmatch(name) and not path.is_symlink():
                continue
            relative = path.relative_to(root).as_posix()
            if path.is_symlink() or manifest is None or not manifest.lists(relative):
                foreign.append(path)
    return sorted(foreign)


def own_files(directory: Path) -> list[Path]:
    """Files under `directory` that its manifests list, without the manifests themselves, lock
    files and temporaries of unfinished writes; sorted."""
    foreign = set(foreign_files(directory))
    return sorted(p for p in Path(directory).rglob("*")
                  if p.is_file() and p.name != MANIFEST and p not in foreign
                  and not _TEMPORARY.fullmatch(p.name) and not LOCK_FILE.fullmatch(p.name))


def live_writers(directory: Path, *, besides: Path | None = None) -> list[str]:
    """The processes holding a lock under `directory` (nested outputs being written), but for
    the lock `besides` (this process's own)."""
    return [f"{path.relative_to(directory)} by {who}" for path in sorted(
                Path(directory).rglob("*.malt-lock"))
            if LOCK_FILE.fullmatch(path.name) and path != besides
            and (who := held_by(path)) is not None]


def describe(paths: list[Path], root: Path) -> str:
    """The first few of `paths` relative to `root`, and how many more."""
    shown = ", ".join(str(p.relative_to(root)) for p in paths[:_SHOWN])
    more = len(paths) - _SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


class OutputDir:
    """A directory malt writes file by file; creating the object touches nothing on disk."""

    def __init__(self, path: str | Path, kind: str):
        self.path = Path(path)
        self.kind = kind

    @property
    def manifest(self) -> Manifest | None:
        return read_manifest(self.path)

    def is_ours(self) -> bool:
        """The directory exists and is malt's output of this kind."""
        manifest = self.manifest
        return manifest is not None and manifest.kind == self.kind

    def is_empty(self) -> bool:
        """Absent, or a directory holding nothing but lock files."""
        if not self.path.exists():
            return True
        return self.path.is_dir() and all(LOCK_FILE.fullmatch(p.name) and not p.is_symlink()
                                           for p in self.path.iterdir())

    def check_writable(self, *, overwrite: bool = False, keep: bool = False,
                       hint: str = "pass --overwrite to replace it") -> None:
        """Raise unless `claim` with the same arguments would succeed. Touches nothing."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"{self.path} exists and is not a directory")
        if self.is_empty():
            return
        manifest = self.manifest
        if manifest is None:
            held = foreign_files(self.path) or sorted(self.path.iterdir())
            raise ConfigError(f"{self.path} is not empty and is not a malt output (it holds "
                              f"{describe(held, self.path)}); choose another directory")
        if manifest.kind != self.kind:
            raise ConfigError(f"{self.path} holds a malt {manifest.kind}, not a {self.kind}; "
                              "choose another directory")
        if keep:
            return
        if not overwrite:
            raise ConfigError(f"{self.path} already holds a malt {self.kind}; {hint}")
        foreign = foreign_files(self.path)
        if foreign:
            raise ConfigError(f"{self.path} holds files malt did not write "
                              f"({describe(foreign, self.path)}); malt deletes only its own "
                              "files: move them away or choose another directory")
        writers = live_writers(self.path, besides=lock_inside(self.path))
        if writers:
            raise ConfigError(f"{self.path} holds outputs being written ({', '.join(writers)}); "
                              "wait until they end")
        locked = _locked_directories(self.path)
        if locked:
            denied = os_error_reason(PermissionError(errno.EACCES, "denied"))
            more = f" and {len(locked) - _SHOWN} more" if len(locked) > _SHOWN else ""
            raise ConfigError(f"cannot remove files from {', '.join(map(str, locked[:_SHOWN]))}"
                              f"{more} (checked before removing any): {denied}")

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the directory's lock while the block runs (`malt.locks`: a second writer is
        refused, naming this process). The directory must be absent, empty or malt's output of
        this kind (checked first); one created for the lock is removed again if the block
        leaves it empty."""
        self.check_writable(keep=True)
        created = [p for p in (self.path, *self.path.parents) if not p.exists()]
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            with output_lock(lock_inside(self.path), self.path):
                yield
        finally:
            for directory in created:  # deepest first; stops at the first one still in use
                try:
                    directory.rmdir()
                except OSError:
                    break

    def claim(self, *, overwrite: bool = False, keep: bool = False,
              hint: str = "pass --overwrite to replace it") -> None:
        """Make the directory ready for writing: created with a manifest when absent or empty;
        when it is already this kind of output, kept as it is (`keep`) or emptied of malt's
        files (`overwrite`). Anything else raises a `ConfigError` before a file is removed."""
        self.check_writable(overwrite=overwrite, keep=keep, hint=hint)
        if self.is_ours():
            if not keep:
                self._clear()
            return
        self.path.mkdir(parents=True, exist_ok=True)
        _write_manifest(self.path, Manifest(self.kind))

    def record(self, *paths: str | Path) -> None:
        """Add paths (absolute, or relative to the directory; patterns allowed) to the
        manifest, before the files are written."""
        manifest = self.manifest or Manifest(self.kind)
        new = [self._relative(p) for p in paths]
        missing = [n for n in new if n not in manifest.entries]
        if missing:
            _write_manifest(self.path, Manifest(manifest.kind, (*manifest.entries, *missing)))

    def writable(self, path: str | Path) -> Path:
        """`path` (inside the directory), recorded as malt's before it is written."""
        self.record(path)
        return self.path / self._relative(path)

    def _relative(self, path: str | Path) -> str:
        """`path` relative to the directory: an absolute path inside it, a relative one built
        from a relative `self.path` (`self.path / name`), or a name already relative to it."""
        path = Path(path)
        if path.is_absolute():
            return path.relative_to(self.path.absolute()).as_posix()
        if self.path.parts and path.parts[:len(self.path.parts)] == self.path.parts:
            path = path.relative_to(self.path)
        return path.as_posix()

    def _clear(self) -> None:
        """Delete malt's files (nested outputs included) and the directories they leave empty;
        the directory itself and its manifest stay."""
        for entry in sorted(self.path.iterdir()):
            if entry.name == MANIFEST or LOCK_FILE.fullmatch(entry.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        _write_manifest(self.path, Manifest(self.kind))


def _locked_directories(root: Path) -> list[Path]:
    """Directories under `root` (itself included; links not followed) whose entries this
    process may not list or remove: checked before a clear removes anything."""
    locked = [] if os.access(root, os.W_OK | os.X_OK) else [root]
    for directory, subdirectories, _ in os.walk(root):
        for name in subdirectories:
            path = Path(directory) / name
            if not path.is_symlink() and not os.access(path, os.R_OK | os.W_OK | os.X_OK):
                locked.append(path)
    return locked


# --- outputs built whole, then moved into place ---------------------------------------------------
def _siblings(out: Path) -> Iterator[tuple[Path, str, int]]:
    """Staging and set-aside directories of `out` left by malt processes: (path, role, pid)."""
    if not out.parent.is_dir():
        return
    for entry in out.parent.iterdir():
        match = _SIBLING.fullmatch(entry.name)
        if match and match["name"] == out.name and entry.is_dir() \
                and read_manifest(entry) is not None:
            yield entry, match["role"], int(match["pid"])


def recover_siblings(out: Path) -> None:
    """Clean up after malt processes that died while writing `out`: a staging directory is
    removed; a previous output set aside just before the new one was moved in is put back when
    `out` is missing (else removed)."""
    for entry, role, pid in sorted(_siblings(out)):
        if pid == os.getpid() or pid_alive(pid):
            continue
        if role == "old" and not out.exists():
            os.replace(entry, out)
        else:
            shutil.rmtree(entry, ignore_errors=True)


@contextmanager
def staged_output(out: str | Path, kind: str, *, overwrite: bool = False) -> Iterator[Path]:
    """Build an output in a hidden sibling of `out` and move it into place when the block
    ends without error.

    Every check runs before anything is written: `out` must be absent, empty, or (with
    `overwrite`) malt's own output of `kind` holding nothing else. On error or interruption
    the staging directory is removed and `out` is left as it was. The files under the staging
    directory are recorded in the manifest when it is moved in.
    """
    out = Path(out)
    target = OutputDir(out, kind)
    target.check_writable(overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(lock_beside(out), out):
        recover_siblings(out)
        target.check_writable(overwrite=overwrite)
        staging = out.parent / f".{out.name}.malt-staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _write_manifest(staging, Manifest(kind))
        try:
            yield staging
            _write_manifest(staging, Manifest(kind, tuple(_written(staging))))
            _move_into_place(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _written(staging: Path) -> list[str]:
    """What a command wrote into `staging`: its files, and the directories it left empty."""
    return [p.relative_to(staging).as_posix() for p in staging.rglob("*")
            if p.name != MANIFEST and not p.is_symlink()
            and (p.is_file() or (p.is_dir() and not any(p.iterdir())))]


def _move_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    old = out.parent / f".{out.name}.malt-old-{os.getpid()}"
    os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old)


# --- single files the user names -----------------------------------------------------------------
@contextmanager
def single_file_output(files: dict[Path, Callable[[Path], bool]], *, overwrite: bool = False
                       ) -> Iterator[None]:
    """Hold the lock of a single-file output (the first of `files`, written with the others
    beside it) while the block writes them.

    Each file must be absent, or with `overwrite` one malt wrote: `files` maps it to the test
    that recognises malt's file of its kind. Everything is checked before the block runs (and
    again once the lock is held); a `ConfigError` names the file.
    """
    paths = [Path(p) for p in files]
    for path in paths:
        _check_file_writable(path, files[path], overwrite)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    with output_lock(lock_beside(paths[0]), paths[0]):
        for path in paths:
            _check_file_writable(path, files[path], overwrite)
        yield


def _check_file_writable(path: Path, written_by_malt: Callable[[Path], bool],
                         overwrite: bool) -> None:
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link; name the file to write itself")
    if not path.exists():
        return
    if not path.is_file():
        raise ConfigError(f"{path} is a directory; name the file to write")
    if not overwrite:
        raise ConfigError(f"{path} exists; pass --overwrite to replace it")
    if not written_by_malt(path):
        raise ConfigError(f"{path} was not written by malt; --overwrite replaces only files "
                          "malt wrote: move it away or choose another --out")
