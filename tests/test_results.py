import doctest

import pytest

from django_remote_submission import results
from django_remote_submission.results import is_matching, select_results, snapshot
from django_remote_submission.transport.base import RemoteFile


def test_doctests():
    assert doctest.testmod(results).failed == 0


@pytest.mark.parametrize(
    ("name", "patterns", "expected"),
    [
        ("1.txt", None, True),
        ("1.txt", ["1.txt"], True),
        ("1.txt", ["[12].txt"], True),
        ("1.txt", ["*.txt"], True),
        ("1.txt", ["1.txt", "!*.txt"], False),
        ("1.txt", ["!*.txt", "[12].txt"], True),
        ("1.txt", [], False),
        ("sub/1.txt", ["*.txt"], True),
        ("sub/1.txt", ["sub/*"], True),
        ("sub/1.txt", ["other/*"], False),
        ("sub/1.TXT", ["*.txt"], False),
    ],
)
def test_is_matching(name, patterns, expected):
    assert is_matching(name, patterns) is expected


def files(*specs):
    return [RemoteFile(path, size, mtime) for path, size, mtime in specs]


def test_select_takes_new_and_changed_files_only():
    before = snapshot(files(("old", 1, 10.0), ("changed", 1, 10.0), ("grown", 1, 10.0)))
    after = files(("old", 1, 10.0), ("changed", 1, 11.0), ("grown", 2, 10.0), ("new", 5, 12.0))
    chosen = select_results(before, after, patterns=None).chosen
    assert [f.path for f in chosen] == ["changed", "grown", "new"]


def test_select_excludes_the_program_and_the_control_directory():
    after = files(("prog.py", 1, 1.0), (".drs-x/stdout", 1, 1.0), ("out", 1, 1.0))
    chosen = select_results({}, after, patterns=None, exclude=["prog.py", ".drs-x/"]).chosen
    assert [f.path for f in chosen] == ["out"]


def test_select_respects_the_size_limits():
    after = files(("a", 60, 1.0), ("huge", 500, 1.0), ("b", 30, 1.0), ("c", 30, 1.0))
    selection = select_results({}, after, patterns=None, max_file_size=100, max_total_size=100)
    assert [f.path for f in selection.chosen] == ["a", "b"]
    assert [(f.path, "FILE_SIZE" in why) for f, why in selection.skipped] == [
        ("huge", True),
        ("c", False),
    ]


def test_natural_key_orders_names_as_people_count():
    from django_remote_submission.results import natural_key

    names = ["out_10.txt", "out_2.txt", "Out_1.txt", "out_1.txt", "summary.csv", "a10b2", "a9b30"]
    assert sorted(names, key=natural_key) == [
        "a9b30",
        "a10b2",
        "Out_1.txt",
        "out_1.txt",
        "out_2.txt",
        "out_10.txt",
        "summary.csv",
    ]
