"""Local files are written so that nobody sees half of one, also with two writers of the same file."""

import os
import shutil
import threading

import pytest

from base import storage


def test_an_archive_copy_another_run_put_there_meanwhile_is_kept(tmp_path, monkeypatch) -> None:
    """Two runs archive one file at once: the second finds the copy in place after its own was made,
    keeps that one and leaves no partial file behind."""
    source = tmp_path / "gaj_hj_20261101.csv"
    source.write_bytes(b"a,b\n1,2\n")
    target = tmp_path / "archive" / "ab" / source.name
    copy = shutil.copyfile

    theirs: list[int] = []

    def copy_while_another_run_finishes(src, dst):
        copy(src, dst)
        target.write_bytes(b"a,b\n1,2\n")  # the other run's copy appears
        theirs.append(target.stat().st_ino)
        return dst

    monkeypatch.setattr(shutil, "copyfile", copy_while_another_run_finishes)
    assert storage.store_once(source, target) == target
    assert target.read_bytes() == b"a,b\n1,2\n" and [target.stat().st_ino] == theirs  # not replaced
    assert sorted(p.name for p in target.parent.iterdir()) == [source.name]  # no partial left


def test_two_writers_of_one_file_never_take_each_others_partial(tmp_path) -> None:
    target = tmp_path / "outbox" / "gaj_hj" / "x.receipt.csv"
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for _ in range(20):
                storage.write_whole(target, bytes([48 + n]) * 100_000)
        except BaseException as exc:  # reported below
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert errors == []
    whole = target.read_bytes()
    assert len(whole) == 100_000 and len(set(whole)) == 1  # one writer's bytes, whole
    assert os.listdir(target.parent) == [target.name]


def test_a_stream_that_fails_leaves_nothing(tmp_path) -> None:
    target = tmp_path / "outbox" / "x.receipt.csv"
    with pytest.raises(RuntimeError), storage.writing_whole(target) as out:
        out.write(b"row,record_key\n")
        raise RuntimeError("the database went away")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with storage.writing_whole(target) as out:
        out.write(b"row,record_key\n")
    assert target.read_bytes() == b"row,record_key\n"
