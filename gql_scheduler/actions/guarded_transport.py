"""The HTTP actions' client, whose every connection is checked against the network policy.

The check sits in the connection layer (an httpcore network backend), so it applies to the
address actually connected to: after DNS resolution, on every new connection, and so on
every redirect hop if redirects are ever followed. The name is resolved once, every address
it resolves to is checked, and the connection goes to one of those checked addresses, never
to the name again: a DNS answer that changes in between (rebinding) cannot slip through.
TLS still verifies and sends SNI for the URL's own host name, which httpcore passes to
`start_tls` separately.

Proxies from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) are not used: through a
proxy the only connection made here is to the proxy, which resolves and reaches the target
out of the policy's sight, so the deny list would mean nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import urllib.request
from collections.abc import Iterable

import httpcore
import httpx

from gql_scheduler.actions import network_policy
from gql_scheduler.actions.network_policy import NetworkPolicy

log = logging.getLogger("gql_scheduler.actions")

# httpx's own defaults for a client's pool.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_PROXY_SCHEMES = ("http", "https", "all")
# How long a connection to one of several addresses may take before the next is tried.
NEXT_ADDRESS_AFTER_SECONDS = 2.0


class AddressRefused(httpcore.ConnectError):
    """A connection the network policy refuses; the message is one line for the user."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Wraps a network backend: resolves, checks every address, connects to a checked one."""

    def __init__(
        self, policy: NetworkPolicy, backend: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._backend = backend or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # One deadline for resolving and connecting, as httpx's connect timeout means.
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._allowed_addresses(host, port)
                return await self._connect_first(addresses, port, local_address, socket_options)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {host} timed out") from None

    async def _allowed_addresses(self, host: str, port: int) -> list[str]:
        problem = network_policy.non_canonical_address_problem(host)
        if problem is not None:
            # Stored before validation refused such hosts; the resolver would accept it.
            raise AddressRefused(f"refused: {problem}")
        addresses = await _resolve(host, port)
        for text in addresses:
            denial = self._policy.denial(ipaddress.ip_address(text))
            if denial is not None:
                # One denied address refuses the name: it points into a denied network.
                named = None if network_policy.literal_address(host) is not None else host
                raise AddressRefused(denial.message(named))
        return addresses

    async def _connect_first(
        self,
        addresses: list[str],
        port: int,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        options = list(socket_options or ())
        *others, last = addresses
        for address in others:
            # Not Happy Eyeballs (anyio's needs the name, and would resolve it again), but a
            # fallback that does not spend the whole connect timeout on one dead address.
            try:
                async with asyncio.timeout(NEXT_ADDRESS_AFTER_SECONDS):
                    return await self._backend.connect_tcp(
                        address, port, local_address=local_address, socket_options=options
                    )
            except (httpcore.ConnectError, TimeoutError):
                continue
        return await self._backend.connect_tcp(
            last, port, local_address=local_address, socket_options=options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's signature
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("refused: HTTP actions connect over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


async def _resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in the resolver's order, each once."""
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:  # socket.gaierror: as httpcore's own backends report it
        raise httpcore.ConnectError(str(error)) from error
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found))


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool built on a GuardedBackend."""

    def __init__(self, policy: NetworkPolicy, *, limits: httpx.Limits = DEFAULT_LIMITS) -> None:
        super().__init__(limits=limits)
        # httpx takes no network backend, but its transport only hands requests to this
        # pool (and maps httpcore's errors to its own): a pool with the same settings and
        # our backend replaces the one it built.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )


def refusal_of(error: Exception) -> str | None:
    """The one-line refusal behind an httpx error, if the network policy caused it."""
    cause = error.__cause__
    return str(cause) if isinstance(cause, AddressRefused) else None


def build_http_client(policy: NetworkPolicy) -> httpx.AsyncClient:
    """The client HTTP actions share. Redirects are not followed: a 3xx is the result."""
    ignored = sorted(scheme for scheme in urllib.request.getproxies() if scheme in _PROXY_SCHEMES)
    if ignored:
        log.warning(
            "HTTP actions ignore the proxy settings in the environment (%s)",
            ", ".join(ignored),
            extra={"action": "http_proxy_ignored"},
        )
    return httpx.AsyncClient(
        transport=GuardedTransport(policy),
        follow_redirects=False,
        timeout=httpx.Timeout(30, connect=10),
    )
