"""SSRF policy: literal-address parsing, the allow decision, registration and send-time checks.

Nothing here opens a connection; the only real DNS lookup is for ``localhost``.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import Any

import pytest

from app.config import Settings
from app.errors import Unprocessable
from app.webhooks import ssrf

LOOPBACK_ONLY = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.0000.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),  # noqa: S104 - an address under test, not a bind
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("::ffff:7f00:1", "127.0.0.1"),
        ("[fe80::1]", "fe80::1"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_normalise_host_literals(host: str, expected: str) -> None:
    assert ssrf.normalise_host(host) == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    "host", ["example.com", "localhost", "hooks.internal", "0x.example", "a1b2", "xn--bcher-kva.de"]
)
def test_normalise_host_names(host: str) -> None:
    assert ssrf.normalise_host(host) is None


@pytest.mark.parametrize(
    "host", ["256.0.0.1", "1.2.3.4.5", "foo.123", "0x1ffffffff", "089.0.0.1", "[::1", "[nope]", ":::"]
)
def test_normalise_host_rejects_malformed(host: str) -> None:
    with pytest.raises(ValueError):
        ssrf.normalise_host(host)


BLOCKED = [
    "[::1]",
    "0.0.0.0",  # noqa: S104 - an address under test, not a bind
    "169.254.169.254",
    "10.0.0.1",
    "100.64.0.1",
    "192.168.1.1",
    "172.16.0.1",
    "127.0.0.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "127.1",
    "[::ffff:127.0.0.1]",
    "[::ffff:10.0.0.1]",
    "[fe80::1]",
    "[fc00::1]",
    "[::]",
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
    "198.18.0.1",
    "[ff02::1]",
    "[fec0::1]",
    "[64:ff9b::7f00:1]",
    "[2002:7f00:1::]",
]


@pytest.mark.parametrize("host", BLOCKED)
def test_non_public_literals_are_refused_everywhere(host: str, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    ip = ssrf.normalise_host(host)
    assert ip is not None
    assert not ssrf.address_allowed(ip, [])
    with pytest.raises(Unprocessable) as refused:
        ssrf.validate_target_url(f"https://{host}/hook", settings)
    assert refused.value.status == 422
    assert "address" in refused.value.detail
    with pytest.raises(ssrf.BlockedTarget):
        asyncio.run(ssrf.resolve_and_check(f"https://{host}/hook", settings))


@pytest.mark.parametrize("host", ["8.8.8.8", "1.1.1.1", "[2001:4860:4860::8888]", "[::ffff:8.8.8.8]", "134744072"])
def test_global_literals_are_allowed_by_the_decision(host: str, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    ip = ssrf.normalise_host(host)
    assert ip is not None
    assert ssrf.address_allowed(ip, [])
    normalised = ssrf.validate_target_url(f"https://{host}/hook?x=1#frag", settings)
    assert normalised == f"https://{ssrf._ip_literal_for_url(ip)}/hook?x=1"
    # A literal needs no DNS and resolve_and_check opens no connection.
    target = asyncio.run(ssrf.resolve_and_check(normalised, settings))
    assert target.ip == str(ip)
    assert target.sni_hostname is None


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]"])
def test_configured_cidrs_open_up_private_space(host: str, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(webhook_allowed_cidrs=["127.0.0.0/8"])
    assert ssrf.address_allowed(ipaddress.ip_address("127.0.0.1"), LOOPBACK_ONLY)
    assert not ssrf.address_allowed(ipaddress.ip_address("10.0.0.1"), LOOPBACK_ONLY)
    # Inside the allowed CIDRs plain http is fine too.
    assert ssrf.validate_target_url(f"http://{host}:8080/in", settings) == "http://127.0.0.1:8080/in"


def test_registration_rejects_bad_urls(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    bad = [
        "",
        "ftp://example.com/",
        "file:///etc/passwd",
        "https://user:pw@example.com/",
        "https://@example.com/",
        "https://example.com@127.0.0.1/",
        "https:///nohost",
        "https://exa mple.com/",
        "https:\\\\example.com\\x",
        "https://[fe80::1%25eth0]/",
        "https://example.com:0/",
        "https://under%20score.example/",
        "https://" + "a" * 2100 + ".com/",
        "http://example.com/",  # plain http to a name, nothing allowed
    ]
    for url in bad:
        with pytest.raises(Unprocessable):
            ssrf.validate_target_url(url, settings)


def test_registration_normalises(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    assert ssrf.validate_target_url(" HTTPS://Hooks.Example.COM:443/a/b?c=d#top ", settings) == (
        "https://hooks.example.com/a/b?c=d"
    )
    assert ssrf.validate_target_url("https://bücher.de:8443", settings) == "https://xn--bcher-kva.de:8443/"


def test_registration_http_rules(make_settings: Callable[..., Settings]) -> None:
    strict = make_settings()
    with pytest.raises(Unprocessable, match="https"):
        ssrf.validate_target_url("http://8.8.8.8/", strict)
    relaxed = make_settings(webhook_allow_http=True)
    assert ssrf.validate_target_url("http://hooks.example.com/x", relaxed) == "http://hooks.example.com/x"
    # With CIDRs configured, a name over http might land inside them; that is settled at send time.
    with_cidrs = make_settings(webhook_allowed_cidrs=["10.20.0.0/16"])
    assert ssrf.validate_target_url("http://hooks.corp.example/", with_cidrs) == "http://hooks.corp.example/"
    with pytest.raises(Unprocessable):
        ssrf.validate_target_url("http://8.8.8.8/", with_cidrs)


def test_localhost_names_are_refused_at_registration(make_settings: Callable[..., Settings]) -> None:
    for name in ["localhost", "LOCALHOST.", "api.localhost"]:
        with pytest.raises(Unprocessable, match="loopback"):
            ssrf.validate_target_url(f"https://{name}/x", make_settings())
    allowed = make_settings(webhook_allowed_cidrs=["127.0.0.0/8"])
    assert ssrf.validate_target_url("https://localhost:9000/x", allowed) == "https://localhost:9000/x"


def test_localhost_is_refused_at_send_time(make_settings: Callable[..., Settings]) -> None:
    """A real lookup of ``localhost``; the stored URL may predate a policy change, so the check repeats."""
    with pytest.raises(ssrf.BlockedTarget, match="loopback"):
        asyncio.run(ssrf.resolve_and_check("https://localhost/hook", make_settings()))
    allowed = make_settings(webhook_allowed_cidrs=["127.0.0.0/8", "::1/128"])
    target = asyncio.run(ssrf.resolve_and_check("http://localhost:8123/hook?a=1", allowed))
    assert ipaddress.ip_address(target.ip).is_loopback
    assert target.port == 8123
    assert target.host_header == "localhost:8123"
    assert target.sni_hostname == "localhost"
    assert target.path_and_query == "/hook?a=1"


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    asked: list[str] = []

    async def fake_resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        if host not in answers:
            import socket

            raise socket.gaierror(-2, "Name or service not known")
        return answers[host]

    monkeypatch.setattr(ssrf, "_resolve", fake_resolve)
    return asked


@pytest.mark.parametrize(
    "answer",
    [
        ["10.0.0.7"],
        ["93.184.216.34", "10.0.0.7"],  # one bad apple is enough
        ["::ffff:127.0.0.1"],
        ["169.254.169.254"],
        ["fe80::1%eth0"],
        ["100.64.3.3"],
    ],
)
def test_any_bad_resolved_address_blocks(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings], answer: list[str]
) -> None:
    _fake_dns(monkeypatch, {"hooks.example.com": answer})
    with pytest.raises(ssrf.BlockedTarget) as blocked:
        asyncio.run(ssrf.resolve_and_check("https://hooks.example.com/x", make_settings()))
    assert "hooks.example.com" in blocked.value.reason


def test_every_attempt_resolves_and_checks_again(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    """The parsed URL is remembered between attempts; what the name resolves to never is: a name
    that turns to a private address between two attempts is blocked on the second."""
    answers = {"hooks.example.com": ["93.184.216.34"]}
    asked = _fake_dns(monkeypatch, answers)
    first = asyncio.run(ssrf.resolve_and_check("https://hooks.example.com/x", make_settings()))
    assert first.ip == "93.184.216.34"
    answers["hooks.example.com"] = ["10.0.0.7"]
    with pytest.raises(ssrf.BlockedTarget) as blocked:
        asyncio.run(ssrf.resolve_and_check("https://hooks.example.com/x", make_settings()))
    assert "10.0.0.7" in blocked.value.reason
    assert asked == ["hooks.example.com", "hooks.example.com"]


def test_send_time_picks_first_checked_address(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    _fake_dns(monkeypatch, {"hooks.example.com": ["2606:2800:220:1::1", "93.184.216.34", "93.184.216.34"]})
    target = asyncio.run(ssrf.resolve_and_check("https://Hooks.Example.com:8443/p?q", make_settings()))
    assert target == ssrf.ResolvedTarget(
        ip="2606:2800:220:1::1",
        port=8443,
        host_header="hooks.example.com:8443",
        scheme="https",
        sni_hostname="hooks.example.com",
        path_and_query="/p?q",
    )


def test_send_time_http_rules(monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]) -> None:
    _fake_dns(monkeypatch, {"public.example": ["93.184.216.34"], "corp.example": ["10.20.1.2"]})
    cidrs = make_settings(webhook_allowed_cidrs=["10.20.0.0/16"])
    assert asyncio.run(ssrf.resolve_and_check("http://corp.example/", cidrs)).ip == "10.20.1.2"
    with pytest.raises(ssrf.BlockedTarget, match="plain http"):
        asyncio.run(ssrf.resolve_and_check("http://public.example/", cidrs))
    with pytest.raises(ssrf.BlockedTarget, match="plain http"):
        asyncio.run(ssrf.resolve_and_check("http://8.8.8.8/", make_settings()))
    relaxed = make_settings(webhook_allow_http=True)
    assert asyncio.run(ssrf.resolve_and_check("http://public.example/", relaxed)).port == 80


def test_send_time_dns_failure_and_bad_urls(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    _fake_dns(monkeypatch, {})
    settings = make_settings()
    with pytest.raises(ssrf.UnresolvableTarget, match="could not resolve"):
        asyncio.run(ssrf.resolve_and_check("https://nowhere.example/", settings))
    cases: list[Any] = ["ftp://x.example/", "https://u:p@x.example/", "https://1.2.3.4.5/", "https:///x"]
    for url in cases:
        with pytest.raises(ssrf.BlockedTarget):
            asyncio.run(ssrf.resolve_and_check(url, settings))
