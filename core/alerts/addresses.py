"""Where an alert may go: the addresses an alert URL resolves to are checked before anything is sent.

An admin types the URL, but the request leaves from the LeanOps server, inside its network: a URL
that resolves to the server itself (loopback), to a link-local address or to a cloud metadata service
(``169.254.169.254``, ``fd00:ec2::254``) would let whoever sets a channel read or poke what only the
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
METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")}
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


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a place for alerts by default (None: it is fine)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA:
        return "cloud metadata"
    for kind in ("loopback", "link_local", "unspecified", "multicast", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
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
