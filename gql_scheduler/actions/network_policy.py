"""Which addresses HTTP actions may connect to: deny and allow lists of networks.

Pure: parsing and deciding, no I/O. The connection layer (`guarded_transport`) asks about
every address it is about to connect to; job validation asks about URL hosts that are
literal addresses, so that an obvious refusal is reported when the job is saved.

The rule: the most specific network that holds the address decides. An address is refused
when it is in a denied network and in no allowed network with a longer prefix; on a tie
(the same network in both lists) the deny wins. The allow list is therefore a list of
exceptions cut out of the deny list (`169.254.169.254/32` out of `169.254.0.0/16`); an
address in no denied network is allowed whatever the allow list says.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from string import hexdigits
from urllib.parse import urlsplit

DENY_SETTING = "GQL_SCHEDULER_HTTP_DENY_NETWORKS"
ALLOW_SETTING = "GQL_SCHEDULER_HTTP_ALLOW_NETWORKS"

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

# Link-local (which holds the cloud metadata service at 169.254.169.254) and AWS's IPv6
# metadata address. Loopback and private ranges stay reachable: users call local services.
DEFAULT_DENIED_NETWORKS: tuple[Network, ...] = (
    IPv4Network("169.254.0.0/16"),
    IPv6Network("fe80::/10"),
    IPv6Network("fd00:ec2::254/128"),
)

# RFC 6052's well-known NAT64 prefix: a host behind a NAT64 gateway reaches the IPv4
# address in the last 32 bits.
_NAT64 = IPv6Network("64:ff9b::/96")
# Connecting to the unspecified address reaches this host's own loopback (Linux, BSD).
_UNSPECIFIED_REACHES: dict[Address, Address] = {
    IPv4Address("0.0.0.0"): IPv4Address("127.0.0.1"),
    IPv6Address("::"): IPv6Address("::1"),
}


def parse_networks(text: str) -> tuple[Network, ...]:
    """Networks from a comma-separated list such as `10.0.0.0/8, fe80::/10`; a bare address
    is its own /32 or /128. Raises ValueError naming the first bad item."""
    networks = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ip_network(item))
        except ValueError as error:
            # ip_network is strict: `10.0.0.1/8` (host bits set) is more likely a typo for
            # one address than meant as all of 10.0.0.0/8, so it is refused, not guessed.
            raise ValueError(f"{item!r} is not a network in CIDR notation: {error}") from None
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class Denial:
    """Why an address is refused: the address, the IPv4 address it stands for if any, and
    the denied network that holds it."""

    address: Address
    reaches: Address | None
    network: Network

    def message(self, host: str | None = None) -> str:
        """The one line a user sees, naming the host name that resolved here, if any."""
        shown = str(self.address) if self.reaches is None else f"{self.address} ({self.reaches})"
        where = f"a denied network ({self.network}, {DENY_SETTING})"
        if host is None:
            return f"refused: {shown} is in {where}"
        return f"refused: {host} resolves to {shown}, which is in {where}"


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    denied: tuple[Network, ...] = DEFAULT_DENIED_NETWORKS
    allowed: tuple[Network, ...] = ()

    def denial(self, address: Address) -> Denial | None:
        """Why a connection to `address` is refused, or None if it is allowed.

        An IPv6 address that carries an IPv4 address (mapped `::ffff:a.b.c.d`, compatible
        `::a.b.c.d`, NAT64) is judged as that IPv4 address too: either being refused refuses
        it. So is an unspecified address, as the loopback address it connects to.
        """
        address = _without_scope(address)
        for candidate in (address, *_addresses_reached(address)):
            network = self._deciding_denied_network(candidate)
            if network is not None:
                reaches = None if candidate == address else candidate
                return Denial(address, reaches, network)
        return None

    def url_host_problem(self, url: str) -> str | None:
        """Why a URL's host is refused before any connection: a non-canonical spelling of an
        address, or a literal address in a denied network. None for host names, which are
        judged when connecting, by the addresses they resolve to."""
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return None  # a malformed URL is reported by the URL's own validation
        if not host:
            return None
        problem = non_canonical_address_problem(host)
        if problem is not None:
            return problem
        address = literal_address(host)
        denial = None if address is None else self.denial(address)
        return None if denial is None else denial.message()

    def _deciding_denied_network(self, address: Address) -> Network | None:
        denied = _most_specific(self.denied, address)
        if denied is None:
            return None
        allowed = _most_specific(self.allowed, address)
        if allowed is not None and allowed.prefixlen > denied.prefixlen:
            return None
        return denied


def literal_address(host: str) -> Address | None:
    """The address a URL host spells canonically (IPv6 without brackets, an optional zone),
    or None for a host name."""
    try:
        return ip_address(host)
    except ValueError:
        return None


def non_canonical_address_problem(host: str) -> str | None:
    """Why `host` is refused as an obfuscated address (`2130706433`, `0x7f000001`,
    `0177.0.0.1`, `127.1`), or None.

    The C resolver (and browsers) read these as IPv4 addresses, but they are used only to
    slip past address filters. The test is the WHATWG URL standard's: a host whose last
    label is a decimal or 0x-hexadecimal number is an IPv4 address, and must then be
    written as four plain decimal numbers. No top-level domain is numeric, so no host name
    is caught.
    """
    if not _ends_in_a_number(host):
        return None
    try:
        if str(IPv4Address(host)) == host:
            return None
    except ValueError:
        pass
    try:
        # inet_aton parses like the C resolver does (no lookup): what it means, if anything.
        meant = f" (it means {socket.inet_ntoa(socket.inet_aton(host))})"
    except OSError:
        meant = ""
    return f"{host!r} is not a canonical address{meant}; write an IPv4 address as a.b.c.d"


def _ends_in_a_number(host: str) -> bool:
    if ":" in host:
        return False  # an IPv6 literal, whose dotted IPv4 tail is its standard spelling
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()  # a trailing dot (`127.0.0.1.`)
    last = labels[-1]
    if last.isascii() and last.isdigit():
        return True
    return last[:2].lower() == "0x" and all(char in hexdigits for char in last[2:])


def _without_scope(address: Address) -> Address:
    # A zone (`fe80::1%eth0`) picks an interface, not another address.
    if isinstance(address, IPv6Address) and address.scope_id is not None:
        return IPv6Address(address.packed)
    return address


def _addresses_reached(address: Address) -> tuple[Address, ...]:
    if address in _UNSPECIFIED_REACHES:
        return (_UNSPECIFIED_REACHES[address],)
    if isinstance(address, IPv4Address):
        return ()
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    high = int(address) >> 32
    if high == 0 and int(address) > 1:  # IPv4-compatible, except :: and ::1
        return (IPv4Address(int(address) & 0xFFFFFFFF),)
    if address in _NAT64:
        return (IPv4Address(int(address) & 0xFFFFFFFF),)
    return ()


def _most_specific(networks: tuple[Network, ...], address: Address) -> Network | None:
    holding = [
        network for network in networks if network.version == address.version and address in network
    ]
    return max(holding, key=lambda network: network.prefixlen, default=None)
