"""Where files live: a local folder (the default) or a bucket, named by a URI (fsspec).

POPEX_ARCHIVE_DIR, POPEX_LANDING_DIR and POPEX_OUTBOX_DIR are each a local path (or a file:// URI) or
a URI such as s3://bucket/archive. A local location is a pathlib.Path and handled as it always was
(a .part file renamed into place, archive copies made read-only); any other is a str and goes
through fsspec (s3fs for s3://, with POPEX_S3_ENDPOINT_URL for a server that is not AWS).

A batch's archive_path is either: an absolute local path (a local archive, and every row written
before URIs) or the object's URI; `location` reads both, so no migration rewrites old rows.
"""

import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypeVar, cast

from base.settings import storage_settings

# A location keeps its kind through joins and listings: a Path stays a Path, a URI stays a str.
Location = TypeVar("Location", bound=Path | str)


def location(value: str | Path) -> Path | str:
    """A setting's, parameter's or row's value as a location: a Path when local (a path or file://), else the URI."""
    text = str(value)
    if text.startswith("file://"):
        return Path(text.removeprefix("file://"))
    return Path(text) if "://" not in text else text


def _fs(uri: str) -> tuple[Any, str]:
    """The fsspec file system of a URI and the path within it (fsspec imported here: a local location,
    the default, never needs it, and a command that only reads local files starts 50 ms sooner)."""
    import fsspec

    options: dict[str, Any] = {}
    if fsspec.utils.get_protocol(uri) in ("s3", "s3a"):
        # No listing cache: another worker moves and writes files between two listings of this one.
        options["use_listings_cache"] = False
        if endpoint := storage_settings().s3_endpoint_url:
            options["endpoint_url"] = endpoint
    fs, path = fsspec.core.url_to_fs(uri, **options)
    return fs, path


def join(base: Location, *parts: str) -> Location:
    """base/part/…, of the same kind as base."""
    if isinstance(base, Path):
        return cast(Location, base.joinpath(*parts))
    return cast(Location, "/".join([base.rstrip("/"), *parts]))


def name(where: Path | str) -> str:
    """The file name at the end of a location."""
    return where.name if isinstance(where, Path) else PurePosixPath(where.rstrip("/")).name


def files(folder: Location) -> list[Location]:
    """The files directly in a folder (not in its subfolders)."""
    if isinstance(folder, Path):
        return [cast(Location, p) for p in folder.iterdir() if p.is_file()]
    fs, path = _fs(folder)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:  # a prefix nothing was written under yet
        return []
    return [join(folder, name(e["name"])) for e in entries if e["type"] == "file"]


def move(source: Location, folder: Location) -> Location:
    """Move a file into a folder; a same-named file there is kept (this one becomes name.2.ext, …)."""
    file = PurePosixPath(name(source))
    target, n = join(folder, file.name), 1
    while exists(target):
        n += 1
        target = join(folder, f"{file.stem}.{n}{file.suffix}")
    if isinstance(source, Path) and isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
    else:
        fs, path = _fs(str(source))
        fs.mv(path, _fs(str(target))[1])  # on S3 a copy, then a delete: interrupted, both copies remain
    return target


def exists(where: Path | str) -> bool:
    """Whether a file is there."""
    if isinstance(where, Path):
        return where.exists()
    fs, path = _fs(where)
    return bool(fs.exists(path))


def signature(where: Path | str) -> tuple[int, int] | None:
    """(size, modification time in ns) of a local file, which change while it is being written; None for
    an object in a bucket, which appears whole when its upload ends."""
    if not isinstance(where, Path):
        return None
    stat = where.stat()
    return stat.st_size, stat.st_mtime_ns


def file_sha256(path: Path) -> str:
    """SHA-256 of a local file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _partial(target: Path) -> Path:
    """A file beside target to write before it appears under its name: one of this writer's own (two
    runs writing the same file at once must not write into, or rename away, each other's)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.part")


def store_once(source: Path, target: Location) -> Location:
    """Copy a local file to target, read-only, unless target exists (archive names carry the hash, so an
    existing one holds these bytes). A bucket's objects are made immutable by the bucket (docs/OPERATIONS.md)."""
    if isinstance(target, Path):
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = _partial(target)
            try:
                shutil.copyfile(source, partial)
                os.chmod(partial, 0o444)
                os.link(partial, target)  # never over a copy another run put there meanwhile
            except FileExistsError:
                pass  # it holds these bytes (the name carries their hash)
            finally:
                partial.unlink(missing_ok=True)
        return target
    fs, path = _fs(target)
    if not fs.exists(path):
        fs.put_file(str(source), path)  # one PUT: the object appears whole or not at all
    return target


def write_whole(target: Location, data: bytes) -> Location:
    """Write a file so that a reader never sees half of it: a .part renamed into place, or one PUT."""
    if isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = _partial(target)
        try:
            partial.write_bytes(data)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target
    fs, path = _fs(target)
    fs.pipe_file(path, data)
    return target


@contextmanager
def writing_whole(target: Location) -> Iterator[IO[bytes]]:
    """Write a file as a stream that a reader still never sees half of: into a .part renamed into place
    at the end (or a local temporary file and then one PUT); nothing is left of it if the writing fails.
    For a file too large to hold in memory (a city's receipt of millions of rows)."""
    if isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = _partial(target)
        try:
            with partial.open("wb") as out:
                yield out
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return
    fs, path = _fs(target)
    with tempfile.TemporaryDirectory(prefix="popex-") as folder:
        local = Path(folder) / name(target)
        with local.open("wb") as out:
            yield out
        fs.put_file(str(local), path)


@contextmanager
def local_copy(where: Path | str, *, sha256: str | None = None) -> Iterator[Path]:
    """The file as a local path: the file itself when local; else a download into a temporary folder,
    removed afterwards, and checked against sha256 when given (an archived object must still hold the
    bytes that were hashed when it was received)."""
    if isinstance(where, Path):
        yield where
        return
    fs, path = _fs(where)
    with tempfile.TemporaryDirectory(prefix="popex-") as folder:
        copy = Path(folder) / name(where)
        fs.get_file(path, str(copy))
        if sha256 is not None and (found := file_sha256(copy)) != sha256:
            raise OSError(f"{where}: SHA-256 {found}, not the {sha256} recorded when it was received")
        yield copy
