"""Slurm hostlist expansion: ranges, padding, cartesian products, plain lists, and bad syntax."""

from __future__ import annotations

import pytest

from wattprint.pipeline.errors import InputError
from wattprint.pipeline.sources.jobs.hostlist import expand


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("gpu[01-04]", ("gpu01", "gpu02", "gpu03", "gpu04")),
        ("gpu[01-02,07]", ("gpu01", "gpu02", "gpu07")),
        ("a[1-2]-b[3-4]", ("a1-b3", "a1-b4", "a2-b3", "a2-b4")),
        ("n1,n2", ("n1", "n2")),
        ("gpu[01-02],cpu7", ("gpu01", "gpu02", "cpu7")),
        ("node[008-011]", ("node008", "node009", "node010", "node011")),
        ("r[9-11]", ("r9", "r10", "r11")),
        ("jz-gpu[1,3]i0", ("jz-gpu1i0", "jz-gpu3i0")),
        ("cdr1", ("cdr1",)),
        (" n1 , n2 ", ("n1", "n2")),
        ("n1,n1,n[1-2]", ("n1", "n2")),
        ("gpu01.cluster.local", ("gpu01.cluster.local",)),
        ("", ()),
    ],
)
def test_expand(text: str, hosts: tuple[str, ...]) -> None:
    assert expand(text, "jobs.csv:3") == hosts


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("gpu[01-04", "never closed"),
        ("gpu01-04]", "without '['"),
        ("gpu[[1-2]]", "nested"),
        ("gpu[4-1]", "backwards"),
        ("gpu[a-b]", "not a number"),
        ("gpu[]", "not a number"),
        ("gpu[1-2-3]", "not a number"),
        ("n1,,n2", "empty item"),
        ("n1,", "empty item"),
        ("gpu 01", "whitespace"),
        ("n[0-9999999]", "more than"),
        ("a[0-999]b[0-999]", "more than"),
    ],
)
def test_bad_hostlist_names_where(text: str, fragment: str) -> None:
    with pytest.raises(InputError) as exc:
        expand(text, "jobs.csv:3 nodes")
    msg = str(exc.value)
    assert msg.startswith("jobs.csv:3 nodes: ")
    assert fragment in msg
