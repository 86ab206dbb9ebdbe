"""Operating-system errors in words: which path, what went wrong, what to do."""

from __future__ import annotations

import errno

import pytest

from malt.errors import (
    ConfigError,
    DataError,
    describe_os_error,
    file_error,
    os_error_reason,
    os_errors_as,
)


@pytest.mark.parametrize("code, words", [
    (errno.EACCES, "permission denied"), (errno.EPERM, "permission denied"),
    (errno.ENOSPC, "no space left"), (errno.EFBIG, "ulimit -f"), (errno.EDQUOT, "quota"),
    (errno.EROFS, "read-only"), (errno.ENOENT, "symbolic link to nothing"),
    (errno.EISDIR, "is a directory")])
def test_each_common_error_says_what_to_do(code, words):
    assert words in os_error_reason(OSError(code, "raw text"))


def test_an_unlisted_error_keeps_the_system_s_words():
    assert os_error_reason(OSError(errno.EBUSY, "Device or resource busy")) == \
        "Device or resource busy"


def test_the_description_names_the_path_or_keeps_the_error_s_own_text():
    assert describe_os_error(PermissionError(errno.EACCES, "Permission denied", "runs/x")) \
        .startswith("runs/x: permission denied")
    renamed = OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b")
    assert describe_os_error(renamed).startswith("a -> b: ")
    # pyarrow's errors carry the errno, and the path only in their text.
    arrow = OSError(errno.EFBIG, "Error writing bytes to file. Detail: [errno 27] File too large")
    described = describe_os_error(arrow)
    assert "ulimit -f" in described and "Error writing bytes" in described


def test_a_converted_error_names_the_path_and_keeps_the_cause(tmp_path):
    cause = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".x.tmp-1"))
    error = file_error(cause, tmp_path / "x", action="write")
    assert isinstance(error, ConfigError)
    assert str(error).startswith(f"cannot write {tmp_path / 'x'}: permission denied")
    data = file_error(cause, tmp_path / "day.parquet", error=DataError)
    assert isinstance(data, DataError) and data.file == str(tmp_path / "day.parquet")


def test_the_file_inside_a_named_directory_is_named(tmp_path):
    inner = tmp_path / "cache" / "day" / "a.npy"
    error = file_error(OSError(errno.ENOSPC, "No space", str(inner)), tmp_path / "cache",
                       action="write the cache")
    assert str(error).startswith(f"cannot write the cache {inner}: no space left")


def test_only_operating_system_errors_are_converted(tmp_path):
    with pytest.raises(DataError) as info, os_errors_as(tmp_path, error=DataError):
        raise FileNotFoundError(errno.ENOENT, "No such file", str(tmp_path))
    assert isinstance(info.value.__cause__, FileNotFoundError)
    with pytest.raises(ValueError), os_errors_as(tmp_path):
        raise ValueError("a bug stays a bug")
