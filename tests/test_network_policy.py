"""The network policy of HTTP actions as pure logic: parsing, deciding, obfuscated hosts."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address

import pytest

from gql_scheduler.actions.network_policy import (
    DENY_SETTING,
    NetworkPolicy,
    non_canonical_address_problem,
    parse_networks,
)

DEFAULT = NetworkPolicy()


def policy(denied: str, allowed: str = "") -> NetworkPolicy:
    return NetworkPolicy(denied=parse_networks(denied), allowed=parse_networks(allowed))


def test_networks_are_parsed_from_a_comma_separated_list() -> None:
    assert parse_networks(" 10.0.0.0/8,fe80::/10 , 192.0.2.7,") == (
        IPv4Network("10.0.0.0/8"),
        IPv6Network("fe80::/10"),
        IPv4Network("192.0.2.7/32"),
    )
    assert parse_networks("") == ()


@pytest.mark.parametrize("text", ["10.0.0.1/8", "10.0.0.0/33", "intranet", "10.0.0.0/8, ::1/200"])
def test_a_bad_network_is_named(text: str) -> None:
    with pytest.raises(ValueError, match="is not a network in CIDR notation") as raised:
        parse_networks(text)
    assert repr(text.split(",")[-1].strip()) in str(raised.value)


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("169.254.169.254", "169.254.0.0/16"),
        ("169.254.0.1", "169.254.0.0/16"),
        ("fe80::1", "fe80::/10"),
        ("fe80::1%eth0", "fe80::/10"),
        ("fd00:ec2::254", "fd00:ec2::254/128"),
        # IPv6 spellings of a denied IPv4 address: mapped, compatible, NAT64.
        ("::ffff:169.254.169.254", "169.254.0.0/16"),
        ("::169.254.169.254", "169.254.0.0/16"),
        ("64:ff9b::a9fe:a9fe", "169.254.0.0/16"),
    ],
)
def test_the_default_denies_link_local_and_metadata_addresses(address: str, network: str) -> None:
    denial = DEFAULT.denial(ip_address(address))
    assert denial is not None
    assert str(denial.network) == network


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "fd00::1", "8.8.8.8", "0.0.0.0"],
)
def test_the_default_allows_loopback_private_and_public_addresses(address: str) -> None:
    assert DEFAULT.denial(ip_address(address)) is None


def test_the_message_names_the_network_and_the_setting() -> None:
    denial = DEFAULT.denial(ip_address("169.254.169.254"))
    assert denial is not None
    assert denial.message() == (
        f"refused: 169.254.169.254 is in a denied network (169.254.0.0/16, {DENY_SETTING})"
    )
    assert denial.message("metadata.internal") == (
        "refused: metadata.internal resolves to 169.254.169.254, which is in a denied network"
        f" (169.254.0.0/16, {DENY_SETTING})"
    )
    mapped = DEFAULT.denial(ip_address("::ffff:169.254.169.254"))
    assert mapped is not None
    assert "(169.254.169.254) is in a denied network (169.254.0.0/16" in mapped.message()


@pytest.mark.parametrize(
    ("denied", "allowed", "address", "refused"),
    [
        # A more specific allowed network cuts an exception out of a denied one...
        ("169.254.0.0/16", "169.254.169.254/32", "169.254.169.254", False),
        ("169.254.0.0/16", "169.254.169.254/32", "169.254.169.253", True),
        # ...a less specific one does not, and on a tie the deny wins.
        ("10.0.0.0/8", "0.0.0.0/0", "10.1.1.1", True),
        ("10.0.0.0/8", "10.0.0.0/8", "10.1.1.1", True),
        # The most specific network decides, whichever list it is in.
        ("10.0.0.0/8, 10.1.1.0/24", "10.1.0.0/16", "10.1.1.1", True),
        ("10.0.0.0/8, 10.1.1.0/24", "10.1.0.0/16", "10.1.2.1", False),
        # Not in a denied network: allowed, whatever the allow list holds.
        ("10.0.0.0/8", "192.168.0.0/16", "8.8.8.8", False),
        # Mapped forms are judged as their IPv4 address, exceptions included.
        ("127.0.0.0/8", "", "::ffff:127.0.0.1", True),
        ("127.0.0.0/8", "127.0.0.2/32", "::ffff:127.0.0.2", False),
        # The unspecified address connects to loopback, and is judged as it.
        ("127.0.0.0/8", "", "0.0.0.0", True),
        ("::1/128", "", "::", True),
        # An IPv4 network says nothing of IPv6 addresses and the other way round.
        ("127.0.0.0/8", "", "::1", False),
        ("::/0", "", "127.0.0.1", False),
    ],
)
def test_the_most_specific_network_decides(
    denied: str, allowed: str, address: str, refused: bool
) -> None:
    assert (policy(denied, allowed).denial(ip_address(address)) is not None) is refused


@pytest.mark.parametrize(
    ("host", "meaning"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.000.000.001", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0xa9fea9fe", "169.254.169.254"),
    ],
)
def test_obfuscated_addresses_are_not_canonical(host: str, meaning: str) -> None:
    assert non_canonical_address_problem(host) == (
        f"{host!r} is not a canonical address (it means {meaning}); "
        "write an IPv4 address as a.b.c.d"
    )


@pytest.mark.parametrize("host", ["127.0.0.1.", "1.2.3.4.5", "256.0.0.1", "example.0x"])
def test_hosts_ending_in_a_number_that_mean_nothing_are_not_canonical_either(host: str) -> None:
    problem = non_canonical_address_problem(host)
    assert problem is not None
    assert problem.startswith(f"{host!r} is not a canonical address;")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "169.254.169.254",
        "localhost",
        "example.com",
        "1password.com",
        "123.example",
        "0x7f.example",
        "::ffff:127.0.0.1",
        "::1",
    ],
)
def test_canonical_addresses_and_host_names_pass(host: str) -> None:
    assert non_canonical_address_problem(host) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "http://169.254.169.254/latest/meta-data",
            f"refused: 169.254.169.254 is in a denied network (169.254.0.0/16, {DENY_SETTING})",
        ),
        (
            "https://[fd00:ec2::254]:8443/",
            f"refused: fd00:ec2::254 is in a denied network (fd00:ec2::254/128, {DENY_SETTING})",
        ),
        (
            "http://[fe80::1%25eth0]/",
            f"refused: fe80::1 is in a denied network (fe80::/10, {DENY_SETTING})",
        ),
        ("http://user:pw@0x7f000001:8080/", "'0x7f000001' is not a canonical address"),
        ("http://example.com/", None),
        ("http://127.0.0.1:8080/", None),
        ("http://[::1]/", None),
        ("http://[::1/", None),  # malformed: the URL's own validation reports it
    ],
)
def test_url_hosts_are_judged_before_any_connection(url: str, problem: str | None) -> None:
    found = DEFAULT.url_host_problem(url)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)
