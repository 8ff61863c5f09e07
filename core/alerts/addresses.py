"""Where an alert may go: the addresses an alert URL resolves to are checked before anything is sent.

An admin types the URL, but the request leaves from the LeanOps server, inside its network: a URL
that resolves to the server itself (loopback, ``0.0.0.0/8``), to a link-local address or to a cloud metadata
service (``METADATA``: AWS, GCP, Azure, OCI, Alibaba), also when written as an IPv6 form that carries such an
IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64), would let whoever sets a channel read or poke what only the
server can reach. Those addresses, and unspecified, multicast and reserved ones, are refused unless
``LEANOPS_ALERT_ALLOWED_HOSTS`` lists the host name, the address or a network holding it.
Private networks (10/8, 192.168/16, …) are allowed: in-house receivers live there.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Cloud metadata and platform services a server can reach: AWS (IMDS v4/v6, ECS task credentials), GCP (the
# same 169.254.169.254), Azure (IMDS; the WireServer 168.63.129.16), OCI (192.0.0.192 and 169.254.169.254),
# Alibaba (100.100.100.200), DigitalOcean, Hetzner and OpenStack (169.254.169.254).
METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "169.254.170.23",
                                               "100.100.100.200", "168.63.129.16", "192.0.0.192")}
# 0.0.0.0/8 means "this host" on many stacks (a connect to 0.1.2.3 reaches the server itself)
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")


@dataclass(frozen=True)
class Allowed:
    """The parsed allow-list: host names (lower case) and networks (a single address is a /32 or /128)."""

    hosts: frozenset[str]
    networks: tuple[IPNetwork, ...]

    def admits(self, host: str, address: IPAddress) -> bool:
        return host.lower().rstrip(".") in self.hosts or any(address in net for net in self.networks)


def parse_allowed(text: str) -> Allowed:
    """``"localhost, 127.0.0.1, 10.0.0.0/8"`` → Allowed; raises ValueError naming a bad entry."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in re.split(r"[,\s]+", text or ""):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        name = entry.lower().rstrip(".")
        if not _HOSTNAME.match(name):
            raise ValueError(f"{entry!r} is neither a host name, an IP address nor a network (e.g. 10.0.0.0/8)")
        hosts.add(name)
    return Allowed(frozenset(hosts), tuple(networks))


def embedded(address: IPAddress) -> list[IPAddress]:
    """``address`` and the IPv4 addresses an IPv6 form carries (``ipaddress`` properties: IPv4-mapped
    ``::ffff:a.b.c.d``, 6to4 ``2002:AABB:CCDD::``, Teredo ``2001:0::`` server and client, and the NAT64
    well-known prefix ``64:ff9b::/96``): a guard that checks only the outer address lets them through."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return [address.ipv4_mapped]  # the IPv4 address itself, written another way
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        inner = [address.sixtofour, *(address.teredo or ())]
        if address in NAT64:
            inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        found += [a for a in inner if a is not None]
    return found


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` (or an IPv4 address its IPv6 form carries) is not a place for alerts by default
    (None: it is fine)."""
    for candidate in reversed(embedded(address)):  # the carried IPv4 first: its reason is the telling one
        if candidate in METADATA:
            return "cloud metadata"
        for kind in ("loopback", "link_local", "unspecified", "multicast", "reserved"):
            if getattr(candidate, f"is_{kind}"):
                return kind.replace("_", "-")
        if isinstance(candidate, ipaddress.IPv4Address) and candidate in THIS_NETWORK:
            return "this-network (0.0.0.0/8)"
    return None


def resolve(host: str, port: int, allowed: Allowed) -> IPAddress:
    """The address to connect to for ``host``: every address it resolves to must be acceptable
    (``refusal``) or allow-listed. Raises ``Refused`` or ``OSError`` (cannot resolve)."""
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in found:
            found.append(address)
    for address in found:
        reason = refusal(address)
        if reason and not allowed.admits(host, address):
            shown = host if host == str(address) else f"{host} ({address})"
            raise Refused(f"refused: {shown} is a {reason} address; alerts go to such addresses only when "
                          "LEANOPS_ALERT_ALLOWED_HOSTS lists the host")
    if not found:
        raise OSError(f"{host} resolves to no address")
    return found[0]


class Refused(Exception):
    """An alert URL points at an address alerts may not go to."""
