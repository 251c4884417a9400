"""The Redfish node-power collector against a real Redfish server (sushy-static over tests/fixtures/redfish).

In process, with the poll clock driven by the test so that integrated energy can be checked to the millijoule;
tests/test_node_redfish_process.py runs the exporter process itself.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.redfishkit import Bmc, sushy_static
from wattprint.common.logs import make_handler
from wattprint.exporter.node import source as S
from wattprint.exporter.node.accounting import NodePowerPoller
from wattprint.exporter.node.collector import NodePowerCollector
from wattprint.exporter.node.redfish import RedfishSource
from wattprint.exporter.node.redfish_http import RedfishHttp


@pytest.fixture
def bmc(tmp_path: Path):
    with sushy_static(tmp_path) as b:
        yield b


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def poller(url: str, chassis: str | None = None, max_gap: float = 60.0, **http: object
           ) -> tuple[NodePowerPoller, Clock]:
    clock = Clock()
    source = RedfishSource(RedfishHttp(url, timeout=5.0, **http), chassis=chassis, clock=clock)  # type: ignore[arg-type]
    source.open()
    return NodePowerPoller(source, interval=10.0, max_gap=max_gap, clock=clock), clock


def page(p: NodePowerPoller) -> dict[str, list[tuple[dict[str, str], float]]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodePowerCollector(lambda: p.snapshot, "node-a", (("cluster", "jz"),)))
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def lines(caplog: pytest.LogCaptureFixture) -> str:
    """The log as the exporter writes it (logfmt, with every field), not only the messages."""
    formatter = make_handler("debug").formatter
    assert formatter is not None
    return "\n".join(formatter.format(r) for r in caplog.records)


def energy(p: NodePowerPoller) -> float | None:
    samples = page(p).get("wattprint_node_energy_joules_total", [])
    assert len(samples) <= 1
    return samples[0][1] if samples else None


def test_energy_joules_counter_gives_exact_joules(bmc: Bmc) -> None:
    p, clock = poller(bmc.url, chassis="Modern")
    bmc.set_environment(EnergyJoules=1_000_000.0, PowerWatts=1349.26)
    p.poll_once()
    assert energy(p) == 0.0   # the first reading is the baseline
    for t, joules in ((10, 1_013_492.6), (20, 1_027_001.125), (35, 1_047_250.5)):
        clock.t = 1000.0 + t
        bmc.set_environment(EnergyJoules=joules, PowerWatts=1350.0 + t)
        p.poll_once()
    assert energy(p) == 47_250.5   # 1_047_250.5 - 1_000_000.0, exactly
    got = page(p)
    assert got["wattprint_node_power_watts"] == [({"hostname": "node-a", "source": "redfish", "cluster": "jz"},
                                                   1385.0)]
    (labels, _), = got["wattprint_node_power_source_info"]
    assert (labels["method"], labels["reading"], labels["chassis"]) == (
        "counter", "EnvironmentMetrics.EnergyJoules", "/redfish/v1/Chassis/Modern")
    assert got["wattprint_node_power_up"][0][1] == 1.0


def test_energy_kwh_counter_when_no_joules(bmc: Bmc) -> None:
    bmc.set_environment(EnergyJoules=None, PowerWatts=None, EnergykWh=12.5)
    p, clock = poller(bmc.url, chassis="Modern")
    p.poll_once()
    clock.t += 10
    bmc.set_environment(EnergykWh=12.502)
    p.poll_once()
    assert energy(p) == 7200.0   # 0.002 kWh
    assert p.snapshot.reading == "EnvironmentMetrics.EnergykWh"
    # no PowerWatts beside the counter: the gauge is the interval's average power
    assert p.snapshot.power_watts == 720.0


def test_power_is_integrated_by_trapezoid(bmc: Bmc) -> None:
    p, clock = poller(bmc.url, chassis="Legacy")
    for t, watts in ((0, 300), (10, 500), (20, 400), (23, 100.5)):
        clock.t = 1000.0 + t
        bmc.set_power(watts)
        p.poll_once()
    # (300+500)/2*10 + (500+400)/2*10 + (400+100.5)/2*3 = 4000 + 4500 + 750.75
    assert energy(p) == 9250.75
    snap = p.snapshot
    assert (snap.method, snap.reading, snap.power_watts) == (
        "power_integration", "Power.PowerControl[0].PowerConsumedWatts", 100.5)


def test_environment_power_watts_when_no_counter(bmc: Bmc) -> None:
    bmc.set_environment(EnergyJoules=None, EnergykWh=None, PowerWatts=1000.0)
    p, clock = poller(bmc.url, chassis="Modern")
    p.poll_once()
    clock.t += 10
    bmc.set_environment(PowerWatts=1200.0)
    p.poll_once()
    assert energy(p) == 11_000.0
    assert p.snapshot.reading == "EnvironmentMetrics.PowerWatts"


def test_discovery_takes_the_first_top_level_chassis_with_a_reading(bmc: Bmc) -> None:
    # A GPU tray listed first, contained in the Modern chassis, with its own EnvironmentMetrics: never the node.
    bmc.write("Chassis", {"Members": [{"@odata.id": "/redfish/v1/Chassis/GPU_SXM_1"},
                                      {"@odata.id": "/redfish/v1/Chassis/Modern"},
                                      {"@odata.id": "/redfish/v1/Chassis/Legacy"}]})
    bmc.write("Chassis/GPU_SXM_1", {
        "Id": "GPU_SXM_1", "ChassisType": "Module",
        "EnvironmentMetrics": {"@odata.id": "/redfish/v1/Chassis/GPU_SXM_1/EnvironmentMetrics"},
        "Links": {"ContainedBy": {"@odata.id": "/redfish/v1/Chassis/Modern"}}})
    bmc.write("Chassis/GPU_SXM_1/EnvironmentMetrics", {"PowerWatts": {"Reading": 700.0}})
    p, _ = poller(bmc.url)
    p.poll_once()
    assert (p.snapshot.chassis, p.snapshot.reading) == ("/redfish/v1/Chassis/Modern",
                                                        "EnvironmentMetrics.EnergyJoules")


def test_unknown_chassis_is_an_error_naming_the_ones_there(bmc: Bmc, caplog: pytest.LogCaptureFixture) -> None:
    p, _ = poller(bmc.url, chassis="Nope")
    with caplog.at_level(logging.WARNING, logger="wattprint"):
        p.poll_once()
    assert p.snapshot.errors == (("no_reading", 1),) and not p.snapshot.up
    assert "no chassis 'Nope'" in lines(caplog) and "Legacy, Modern" in lines(caplog)


def test_bmc_errors_are_counted_and_the_counter_does_not_jump(bmc: Bmc, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wattprint")
    p, clock = poller(bmc.url, chassis="Modern")
    bmc.set_environment(EnergyJoules=5000.0)
    p.poll_once()
    clock.t += 10
    bmc.set_environment(EnergyJoules=6000.0)
    p.poll_once()
    assert energy(p) == 1000.0
    # a broken answer: counted, the energy series absent (a gap, not a flat line), up 0
    bmc.write("Chassis/Modern/EnvironmentMetrics", "<html>502 Bad Gateway</html>")
    for _ in range(3):
        clock.t += 10
        p.poll_once()
    assert energy(p) is None and page(p)["wattprint_node_power_up"][0][1] == 0.0
    assert lines(caplog).count("node power read failed") == 1   # logged once, counted every time
    # the resource gone: counted, and the chassis is looked for again
    bmc.remove("Chassis/Modern/EnvironmentMetrics")
    clock.t += 10
    p.poll_once()
    # back, 90 s after the last good read: the counter's delta holds all of it, once
    bmc.write("Chassis/Modern/EnvironmentMetrics", {"EnergyJoules": {"Reading": 15_000.0}})
    clock.t += 10
    p.poll_once()
    assert energy(p) == 10_000.0
    errors = dict(((lab["reason"]), v) for lab, v in page(p)["wattprint_node_power_errors_total"])
    assert errors == {"bad_response": 3.0, "not_found": 1.0}
    assert "node power read again" in lines(caplog)
    # a counter reset on the BMC (ResetMetrics): that interval is dropped, never a negative or a jump
    bmc.set_environment(EnergyJoules=40.0)
    clock.t += 10
    p.poll_once()
    bmc.set_environment(EnergyJoules=100.0)
    clock.t += 10
    p.poll_once()
    assert energy(p) == 10_060.0 and p.snapshot.resets == 1


@pytest.mark.parametrize(("value", "reason"), [(-5, "bad_value"), ("n/a", "bad_value"), (None, "no_reading")])
def test_bad_readings_are_counted_not_booked(bmc: Bmc, value: object, reason: str) -> None:
    p, clock = poller(bmc.url, chassis="Legacy")
    bmc.set_power(300)
    p.poll_once()
    clock.t += 10
    bmc.set_power(value)
    p.poll_once()
    clock.t += 10
    bmc.set_power(300)
    p.poll_once()
    assert dict(p.snapshot.errors) == {reason: 1}
    assert energy(p) == 6000.0   # 20 s at 300 W, integrated over the failed poll (within the max gap)


def test_power_is_not_integrated_across_a_long_gap(bmc: Bmc) -> None:
    p, clock = poller(bmc.url, chassis="Legacy", max_gap=30.0)
    bmc.set_power(300)
    p.poll_once()
    clock.t += 10
    p.poll_once()
    bmc.remove(LEGACY := "Chassis/Legacy/Power")
    for _ in range(6):
        clock.t += 10
        p.poll_once()
    bmc.write(LEGACY, {"PowerControl": [{"PowerConsumedWatts": 900}]})
    clock.t += 10
    p.poll_once()
    assert energy(p) == 3000.0   # the 70 s outage is not guessed
    got = page(p)
    assert got["wattprint_node_power_gaps_total"][0][1] == 1.0
    assert got["wattprint_node_power_gap_seconds_total"][0][1] == 70.0
    clock.t += 10
    p.poll_once()
    assert energy(p) == 12_000.0


def test_credentials_are_sent_and_never_logged(bmc: Bmc, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    user, password = "root", "Tr0ub4dor&3-calvin"
    secret = tmp_path / "bmc-password"
    secret.write_text(password + "\n")
    b64 = base64.b64encode(f"{user}:{password}".encode()).decode()
    p, clock = poller(bmc.url, chassis="Modern", user=user, password_file=str(secret))
    with caplog.at_level(logging.DEBUG, logger="wattprint"):
        p.poll_once()
        # a BMC echoing the request back in an error page, as some do
        bmc.write("Chassis/Modern/EnvironmentMetrics", f"Authorization: Basic {b64} password={password}")
        clock.t += 10
        p.poll_once()
    assert f"Authorization: Basic {b64}" in bmc.log.read_text()   # sushy-static saw the credentials
    assert p.snapshot.errors == (("bad_response", 1),)
    logged = lines(caplog)
    assert "not JSON" in logged and "Authorization: Basic ***" in logged
    for form in (password, b64, base64.b64encode(password.encode()).decode()):
        assert form not in logged


def test_a_link_to_another_origin_is_refused(bmc: Bmc) -> None:
    bmc.write("Chassis", {"Members": [{"@odata.id": "http://198.51.100.7/redfish/v1/Chassis/1"}]})
    p, _ = poller(bmc.url, user="root", password="x")
    p.poll_once()
    assert p.snapshot.errors == (("redirect", 1),)


def test_tls_is_verified_against_the_ca_file(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    with sushy_static(tmp_path, cert=cert) as tls_bmc:
        assert tls_bmc.url.startswith("https://")
        untrusted, _ = poller(tls_bmc.url, chassis="Modern")
        untrusted.poll_once()
        assert untrusted.snapshot.errors == (("tls", 1),) and not untrusted.snapshot.up
        trusted, _ = poller(tls_bmc.url, chassis="Modern", ca_file=str(cert[0]))
        trusted.poll_once()
        assert trusted.snapshot.up and trusted.snapshot.errors == ()


@pytest.mark.parametrize(("kw", "message"), [
    ({"url": "https://root:pw@bmc/"}, "contains credentials"),
    ({"url": "ftp://bmc/"}, r"need an http\(s\) URL"),
    ({"url": "https://bmc/redfish/v1/Chassis/1"}, "give the BMC's address alone"),
    ({"password_file": "/nonexistent"}, "--redfish-password-file was given without --redfish-user"),
    ({"user": "root", "password_file": "/nonexistent"}, "cannot read the file"),
    ({"user": "root"}, "has no password"),
    ({"ca_file": "/nonexistent"}, "cannot load CA certificates"),
])
def test_configuration_faults_are_found_at_open(kw: dict[str, str], message: str) -> None:
    url = kw.pop("url", "https://bmc.example/")
    with pytest.raises(S.NodePowerUnavailable, match=message) as info:
        RedfishHttp(url, **kw).open()  # type: ignore[arg-type]
    assert "pw@" not in str(info.value)


def test_without_sushy_static_ci_fails_rather_than_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from tests.conftest import require_tool

    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    with pytest.raises(pytest.fail.Exception, match="the sushy-tools package of requirements/test.txt"):
        require_tool("sushy-static")
    monkeypatch.setenv("CI", "")
    monkeypatch.delenv("WATTPRINT_REQUIRE_TOOLS", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_tool("sushy-static")


def test_a_refused_password_is_counted_as_unauthorized() -> None:
    """sushy-static takes any credentials; a BMC that refuses them, as a real one does, is a plain HTTP server."""
    from http.server import BaseHTTPRequestHandler

    from tests.conftest import loopback_server

    class Refusing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"error": {"code": "Base.1.8.InsufficientPrivilege"}}'
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="Redfish"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd, url = loopback_server(Refusing)
    try:
        p, _ = poller(url, user="root", password="wrong")
        p.poll_once()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert p.snapshot.errors == (("unauthorized", 1),) and not p.snapshot.up


def test_a_redirect_to_another_origin_is_refused_before_anything_is_sent() -> None:
    from http.server import BaseHTTPRequestHandler

    from tests.conftest import loopback_server

    calls: list[str] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            calls.append(self.headers.get("Authorization", ""))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    other, other_url = loopback_server(Elsewhere)

    class Redirecting(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", other_url + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    home, home_url = loopback_server(Redirecting)
    try:
        p, _ = poller(home_url, user="root", password="s3cret-pass")
        p.poll_once()
    finally:
        for httpd in (home, other):
            httpd.shutdown()
            httpd.server_close()
    assert p.snapshot.errors == (("redirect", 1),) and calls == []


def test_a_rotated_password_file_is_read_again(bmc: Bmc, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = tmp_path / "bmc-password"
    secret.write_text("first-password\n")
    p, clock = poller(bmc.url, chassis="Modern", user="root", password_file=str(secret))
    p.poll_once()
    secret.write_text("second-password-longer\n")
    clock.t += 10
    p.poll_once()
    sent = bmc.log.read_text()
    for password in ("first-password", "second-password-longer"):
        assert "Authorization: Basic " + base64.b64encode(f"root:{password}".encode()).decode() in sent
    # unreadable later: the last password is kept, one warning
    secret.unlink()
    with caplog.at_level(logging.WARNING, logger="wattprint"):
        for _ in range(2):
            clock.t += 10
            p.poll_once()
    assert p.snapshot.up and lines(caplog).count("cannot read the file") == 1
