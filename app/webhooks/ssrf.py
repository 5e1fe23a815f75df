"""Guard against webhook targets that point back into our own network (SSRF).

Two checkpoints:

* **Registration** (:func:`validate_target_url`) is purely lexical: it rejects malformed URLs, userinfo,
  non-http(s) schemes and hosts that are *literal* non-public addresses, in any spelling a resolver
  would accept (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``, ``[::ffff:127.0.0.1]``...).
  Literal hosts are rewritten to their canonical form. No DNS lookup happens here.
* **Send time** (:func:`resolve_and_check`) resolves the host, refuses the delivery if *any* resolved
  address is not allowed, and hands back one checked address. The sender then connects to that
  address itself (keeping the original Host header and TLS server name), so a DNS answer cannot change
  between the check and the connection.

Policy: an address is allowed when it lies inside one of ``settings.webhook_allowed_cidrs``; otherwise
only globally routable unicast addresses are allowed (no loopback, private, link-local, shared
100.64.0.0/10, multicast, reserved or unspecified space).

Plain ``http`` is accepted when ``settings.webhook_allow_http`` is set, or when the target lies inside
the allowed CIDRs. For a literal address that is decided at registration. A hostname can only be
placed at send time, so at registration an http hostname is accepted only if some allowed CIDRs are
configured (it may resolve into them), and the send-time check then requires every resolved address to
be inside them.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from app.errors import Unprocessable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Not covered (or not reliably covered across Python patch releases) by ipaddress.is_global.
_ALWAYS_BLOCKED: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("192.0.0.0/29"),
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("240.0.0.0/4"),
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("fec0::/10"),
)
_SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# One IPv4 component as inet_aton(3) reads it: decimal, 0x-hex or 0-prefixed octal.
_NUMERIC_PART = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


class WebhookSettings(Protocol):
    """The part of :class:`app.config.Settings` this layer reads (any object with these attributes)."""

    @property
    def webhook_allowed_cidrs(self) -> Sequence[str]: ...

    @property
    def webhook_allow_http(self) -> bool: ...

    @property
    def webhook_timeout(self) -> float: ...


class TargetError(Exception):
    """A delivery target that cannot be used right now; ``reason`` is safe to show to the endpoint owner."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BlockedTarget(TargetError):
    """The target is refused by policy (non-public address, plain http, malformed URL...)."""


class UnresolvableTarget(TargetError):
    """The host name did not resolve (a transient or permanent DNS failure, not a policy decision)."""


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """Where to connect for one attempt: a checked address plus what the request must still carry."""

    ip: str
    port: int
    host_header: str
    scheme: str
    sni_hostname: str | None
    path_and_query: str


# --------------------------------------------------------------------------------------------------
# Address parsing and policy
# --------------------------------------------------------------------------------------------------


def _parse_ipv4_loose(parts: list[str]) -> ipaddress.IPv4Address:
    """inet_aton semantics: 1-4 numeric parts, the last one fills the remaining bytes."""
    values: list[int] = []
    for part in parts:
        if part.startswith("0x"):
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                raise ValueError(f"invalid octal component {part!r}")
            values.append(int(part, 8))
        else:
            values.append(int(part, 10))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        raise ValueError("IPv4 component out of range")
    number = 0
    for v in head:
        number = number * 256 + v
    number = number * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(number)


def _unmap(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def normalise_host(host: str) -> IPAddress | None:
    """Return the address a literal host denotes, or None when ``host`` is a genuine host name.

    Accepts dotted-quad IPv4 as well as the legacy forms resolvers still honour (single decimal
    number, hex, octal, and shortened ``a.b`` / ``a.b.c``), IPv6 with or without brackets, and maps
    IPv4-mapped IPv6 (``::ffff:a.b.c.d``) to the IPv4 address it reaches.

    Raises ValueError for something that is neither: a host that ends in a numeric label but is not a
    valid address (``1.2.3.4.5``, ``256.0.0.1``), or an unparsable bracketed/colon form.
    """
    text = host.strip().lower()
    if not text:
        raise ValueError("empty host")
    if text.startswith("[") or text.endswith("]"):
        if not (text.startswith("[") and text.endswith("]")):
            raise ValueError("unbalanced brackets in host")
        return _unmap(ipaddress.IPv6Address(text[1:-1]))
    if ":" in text:
        return _unmap(ipaddress.IPv6Address(text))
    if text.endswith("."):
        text = text[:-1]
    parts = text.split(".")
    if all(_NUMERIC_PART.match(p) for p in parts):
        if len(parts) > 4:
            raise ValueError("too many components for an IPv4 address")
        return _parse_ipv4_loose(parts)
    if _NUMERIC_PART.match(parts[-1]):
        # URL parsers (WHATWG) treat a name ending in a number as an IPv4 attempt; resolvers differ.
        raise ValueError("host ends in a numeric label but is not an IPv4 address")
    return None


def allowed_networks(settings: WebhookSettings) -> tuple[IPNetwork, ...]:
    """Parse ``settings.webhook_allowed_cidrs`` (host bits are tolerated)."""
    return _networks(tuple(settings.webhook_allowed_cidrs))


@functools.lru_cache(maxsize=64)
def _networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


def _in_networks(ip: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def describe_address(ip: IPAddress) -> str:
    """A short human label for why an address is not public."""
    ip = _unmap(ip)
    checks: list[tuple[bool, str]] = [
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip in _SHARED_SPACE if ip.version == 4 else False, "shared address space"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
    ]
    for hit, label in checks:
        if hit:
            return label
    return "non-public"


def address_allowed(ip: IPAddress, allowed_cidrs: Iterable[IPNetwork]) -> bool:
    """Policy decision for one address (IPv4-mapped IPv6 is judged as the IPv4 address)."""
    networks = list(allowed_cidrs)
    ip = _unmap(ip)
    if _in_networks(ip, networks):
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return False
    if (
        not ip.is_global
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or _in_networks(ip, _ALWAYS_BLOCKED)
    ):
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        # 6to4 addresses route to the embedded IPv4 address; judge that one as well.
        if ip.sixtofour is not None and not address_allowed(ip.sixtofour, networks):
            return False
        if ip.is_site_local:
            return False
    return True


def _ip_literal_for_url(ip: IPAddress) -> str:
    return f"[{ip}]" if ip.version == 6 else str(ip)


# --------------------------------------------------------------------------------------------------
# Registration-time validation
# --------------------------------------------------------------------------------------------------


def _authority(url: str) -> str:
    rest = url.split("://", 1)[1] if "://" in url else ""
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def _parse_for_registration(url: str) -> tuple[httpx.URL, str | None]:
    """Parse with httpx's URL parser (the one :func:`resolve_and_check` uses at send time); also return
    the host as written if it was rewritten."""
    try:
        return httpx.URL(url), None
    except httpx.InvalidURL as exc:
        # httpx rejects some legacy IPv4 spellings outright (e.g. "0177.0.0.1"). Work out what the host
        # means so the caller gets a precise answer, then retry with the canonical form.
        try:
            split = urlsplit(url)
            host = split.hostname or ""
            port = split.port
        except ValueError:
            raise Unprocessable(f"The webhook URL is not a valid URL: {exc}.") from exc
        try:
            ip = normalise_host(host) if host else None
        except ValueError:
            ip = None
        if ip is None:
            raise Unprocessable(f"The webhook URL is not a valid URL: {exc}.") from exc
        netloc = _ip_literal_for_url(ip) + (f":{port}" if port is not None else "")
        try:
            return httpx.URL(split._replace(netloc=netloc).geturl()), host
        except httpx.InvalidURL as again:
            raise Unprocessable(f"The webhook URL is not a valid URL: {again}.") from again


def _refuse_address(host: str, ip: IPAddress) -> Unprocessable:
    shown = host if host == str(ip) else f"{host} (= {ip})"
    return Unprocessable(
        f"The webhook URL points at {shown}, a {describe_address(ip)} address. Only public addresses "
        "are accepted unless the range is listed in CLAIMDESK_WEBHOOK_ALLOWED_CIDRS.",
        errors=[{"field": "url", "reason": "blocked-address", "address": str(ip)}],
    )


def validate_target_url(url: str, settings: WebhookSettings) -> str:
    """Check a webhook URL when it is registered and return it in normalised form.

    Raises :class:`app.errors.Unprocessable` (422) with a readable ``detail`` when it is refused.
    The normalised URL has a lower-case scheme and host, an IDNA (punycode) host, canonical literal
    addresses, no default port and no fragment.
    """
    if not isinstance(url, str) or not url.strip():
        raise Unprocessable("The webhook URL is empty.")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise Unprocessable(f"The webhook URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise Unprocessable("The webhook URL must not contain whitespace or control characters.")
    if "\\" in url:
        raise Unprocessable("The webhook URL must not contain backslashes.")
    if "@" in _authority(url):
        raise Unprocessable("The webhook URL must not contain credentials (user:password@).")

    parsed, written_host = _parse_for_registration(url)
    scheme = parsed.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise Unprocessable("The webhook URL must use https (or http where allowed).")
    if parsed.userinfo:
        raise Unprocessable("The webhook URL must not contain credentials (user:password@).")
    try:
        host = parsed.raw_host.decode("ascii").lower()
    except UnicodeDecodeError as exc:
        raise Unprocessable("The webhook URL host is not valid.") from exc
    if not host:
        raise Unprocessable("The webhook URL has no host.")
    if "%" in host:
        raise Unprocessable("The webhook URL host must not contain percent-escapes or IPv6 zone ids.")
    if parsed.port == 0:
        raise Unprocessable("The webhook URL port must not be 0.")

    try:
        literal = normalise_host(host)
    except ValueError as exc:
        raise Unprocessable(f"The webhook URL host {host!r} is not a valid address or name.") from exc

    networks = allowed_networks(settings)
    if literal is not None:
        if not address_allowed(literal, networks):
            raise _refuse_address(written_host or host, literal)
        host_text = _ip_literal_for_url(literal)
        inside_allowed = _in_networks(_unmap(literal), networks)
    else:
        bare = host.removesuffix(".")
        if len(bare) > 253 or not all(_LABEL.match(label) for label in bare.split(".")):
            raise Unprocessable(f"The webhook URL host {host!r} is not a valid host name.")
        if bare == "localhost" or bare.endswith(".localhost"):
            # RFC 6761: these names always mean loopback, whatever DNS would say.
            loopback = ipaddress.IPv4Address("127.0.0.1")
            if not address_allowed(loopback, networks):
                raise _refuse_address(host, loopback)
        host_text = host
        # Unknown until send time; only plausible if some CIDRs are configured at all.
        inside_allowed = bool(networks)

    if scheme == "http" and not settings.webhook_allow_http and not inside_allowed:
        raise Unprocessable(
            "The webhook URL must use https. Plain http is only accepted for targets inside "
            "CLAIMDESK_WEBHOOK_ALLOWED_CIDRS or when CLAIMDESK_WEBHOOK_ALLOW_HTTP is enabled."
        )

    port = "" if parsed.port is None or parsed.port == _DEFAULT_PORTS[scheme] else f":{parsed.port}"
    return f"{scheme}://{host_text}{port}{parsed.raw_path.decode('ascii')}"


# --------------------------------------------------------------------------------------------------
# Send-time resolution
# --------------------------------------------------------------------------------------------------


async def _resolve(host: str, port: int) -> list[str]:
    """All addresses for ``host`` (stream sockets), in the resolver's preferred order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


async def resolve_and_check(url: str, settings: WebhookSettings) -> ResolvedTarget:
    """Resolve the target of ``url`` now and return one address that passed the policy.

    Raises :class:`BlockedTarget` when the URL or any resolved address is refused, and
    :class:`UnresolvableTarget` when the name does not resolve. Resolution runs in the event loop's
    executor; callers should bound the whole call with their own deadline.
    """
    target = _parse_target(url)
    scheme, host, port, literal = target.scheme, target.host, target.port, target.literal

    if literal is not None:
        candidates: list[IPAddress] = [_unmap(literal)]
        sni_hostname = None
    else:
        try:
            raw_addresses = await _resolve(host, port)
        except (socket.gaierror, UnicodeError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise UnresolvableTarget(f"could not resolve {host}: {why}") from exc
        candidates = []
        for raw in raw_addresses:
            if "%" in raw:
                raise BlockedTarget(f"{host} resolves to scoped address {raw}")
            try:
                ip = normalise_host(raw)
            except ValueError as exc:
                raise BlockedTarget(f"{host} resolves to unusable address {raw!r}") from exc
            if ip is None:
                raise BlockedTarget(f"{host} resolves to unusable address {raw!r}")
            ip = _unmap(ip)
            if ip not in candidates:
                candidates.append(ip)
        if not candidates:
            raise UnresolvableTarget(f"could not resolve {host}: no addresses")
        sni_hostname = host.removesuffix(".")

    networks = allowed_networks(settings)
    for ip in candidates:
        if not _allowed(ip, networks):
            shown = str(ip) if literal is not None else f"{host} resolves to {ip}"
            raise BlockedTarget(f"{shown} is a {describe_address(ip)} address")
    if scheme == "http" and not settings.webhook_allow_http:
        outside = [ip for ip in candidates if not _in_networks(ip, networks)]
        if outside:
            raise BlockedTarget(f"plain http to {outside[0]} is not allowed (outside the allowed CIDRs; use https)")

    return ResolvedTarget(
        ip=str(candidates[0]),
        port=port,
        host_header=target.host_header,
        scheme=scheme,
        sni_hostname=sni_hostname,
        path_and_query=target.path_and_query,
    )


@dataclass(frozen=True, slots=True)
class _ParsedTarget:
    scheme: str
    host: str
    port: int
    literal: IPAddress | None  # the address, when the URL names one rather than a host name
    host_header: str
    path_and_query: str


# Every attempt parses its endpoint's URL; the same few URLs come back all the time, and parsing
# (httpx's URL, then the host as an address) cost about a fifth of the delivery loop's CPU. Only the
# parse is kept: names are resolved and every address checked again on each attempt.
@functools.lru_cache(maxsize=1024)
def _parse_target(url: str) -> _ParsedTarget:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise BlockedTarget(f"invalid url: {exc}") from exc
    scheme = parsed.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise BlockedTarget(f"unsupported scheme {scheme!r}")
    if parsed.userinfo:
        raise BlockedTarget("credentials in url")
    try:
        host = parsed.raw_host.decode("ascii").lower()
    except UnicodeDecodeError as exc:
        raise BlockedTarget("invalid host") from exc
    if not host or "%" in host:
        raise BlockedTarget("invalid host")
    try:
        literal = normalise_host(host)
    except ValueError as exc:
        raise BlockedTarget(f"invalid host {host!r}") from exc
    return _ParsedTarget(
        scheme=scheme,
        host=host,
        port=parsed.port or _DEFAULT_PORTS[scheme],
        literal=literal,
        host_header=parsed.netloc.decode("ascii"),
        path_and_query=parsed.raw_path.decode("ascii"),
    )


@functools.lru_cache(maxsize=4096)
def _allowed(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    """:func:`address_allowed`, remembered: the policy is a pure function of the two."""
    return address_allowed(ip, networks)
