"""One node-identity rule: wattprint/pipeline/nodes.py and its SQL twin (sql/macros.sql) give the same answers, and
the config,
the model and the ledger join all use it."""

from __future__ import annotations

import pytest

from wattprint.pipeline import db
from wattprint.pipeline.config import load_text
from wattprint.pipeline.db import sql_text
from wattprint.pipeline.nodes import host_part, node_key, node_matches

HOSTS = [
    "gpu01", "GPU01", " gpu01 ", "gpu01.cluster.local", "GPU01.Cluster.Local.", "gpu01:9400", "GPU01.example.org:9100",
    "10.0.0.7", "10.0.0.7:9835", "[fe80::1]:9400", "fe80::1", "[fe80::1]", "ip-10-0-0-7.ec2.internal", "",
    "node_a-b", "r1i3n7", "jz-gpu-12.idris.fr", "\tgpu02\n", "x:y:9400", "gpu01.", ".gpu01",
]
PATTERNS = ["gpu*", "GPU0?", "gpu[0-9][0-9]", "gpu[!1]*", "10.0.*", "*.ec2.internal", "ip-*", "jz-gpu-*", "r1i*",
            "fe80*", "*", "node_a-b"]


@pytest.fixture(scope="module")
def con():
    c = db.connect(":memory:")
    c.execute(sql_text("macros"))
    yield c
    c.close()


@pytest.mark.parametrize("host", HOSTS)
def test_python_and_sql_give_the_same_node_key(con, host: str) -> None:
    got = con.execute("SELECT host_part(?), node_key(?)", [host, host]).fetchall()[0]
    assert got == (host_part(host), node_key(host))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_python_and_sql_match_cluster_globs_alike(con, pattern: str) -> None:
    for host in HOSTS:
        (sql,) = con.execute("SELECT node_matches(?, ?)", [host, pattern]).fetchall()[0]
        assert bool(sql) == node_matches(host, pattern), (host, pattern)


def test_the_spellings_of_one_node_share_a_key() -> None:
    assert {node_key(h) for h in ("gpu01", "GPU01", "gpu01.cluster.local", "GPU01.Cluster.Local.", "gpu01:9400",
                                  " gpu01 ")} == {"gpu01"}
    assert node_key("10.0.0.7:9835") == "10.0.0.7"             # an address is its own key, not "10"
    assert node_key("[fe80::1]:9400") == "fe80::1"
    assert node_key("ip-10-0-0-7.ec2.internal") == "ip-10-0-0-7"


def test_cluster_globs_match_full_and_short_names_case_insensitively() -> None:
    c = load_text('clusters:\n  a:\n    nodes: ["gpu*"]\n  b:\n    nodes: ["*.ec2.internal"]\n', "t.yaml")
    a, b = c.cluster("a"), c.cluster("b")
    assert a.matches_host("GPU07.cluster.example.org") and not b.matches_host("GPU07.cluster.example.org")
    assert a.matches_host("gpu07:9400") and not b.matches_host("gpu07:9400")
    assert b.matches_host("ip-10-0-0-7.EC2.internal") and not a.matches_host("ip-10-0-0-7.EC2.internal")
    assert not any(x.matches_host(h) for x in (a, b) for h in ("login1", ""))


def test_gpu_key_is_the_uuid_in_any_case(con) -> None:
    rows = con.execute("SELECT gpu_key('c', 'gpu01', '0', 'GPU-AbC'), gpu_key('d', 'GPU01.x', '3', 'gpu-abc'),"
                       " gpu_key('c', 'GPU01.cluster.local', '1', ''), gpu_key('c', 'gpu01', '1', NULL)").fetchall()[0]
    assert rows[0] == rows[1] == "uuid:gpu-abc"
    assert rows[2] == rows[3] == "c/gpu01/1"
