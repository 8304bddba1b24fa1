"""Channels to the nodes of one cluster: addresses, credentials, the
leader's address when known, and how to read a node's error metadata.

Shared by the agent loop and the client; nothing here retries by itself.
"""

import random
import threading
from typing import Dict, List, Optional, Sequence, Tuple, Union

import grpc

# Metadata a node sets on its errors (see proto/hyperraft.proto).
LEADER_ID_KEY = "hyperraft-leader-id"
LEADER_ADDRESS_KEY = "hyperraft-leader-address"
RETRY_SAFE_KEY = "hyperraft-retry-safe"

# Addresses a connection keeps channels for: the configured ones plus the
# leader addresses it learned from hints. A hint never grows this past the
# bound; the oldest learned channel is closed instead.
CHANNELS_MAX = 64
# Messages larger than this are refused by the channel; the node's own
# bounds (1 MiB payloads and outputs) are far below it.
MESSAGE_BYTES_MAX = 4 * 1024 * 1024


class Tls:
    """TLS for the client API: trust `ca_pem` (the cluster CA, as PEM bytes)
    or, when it is None, the system's roots. `domain` is the name to expect
    in the node's certificate when the address is not one of its names."""

    def __init__(self, ca_pem: Optional[bytes] = None, domain: Optional[str] = None):
        if ca_pem is not None and not isinstance(ca_pem, (bytes, bytearray)):
            raise TypeError("ca_pem must be PEM bytes (read the file first)")
        self.ca_pem = bytes(ca_pem) if ca_pem is not None else None
        self.domain = domain


TlsArg = Union[None, bool, Tls]


class HyperraftError(Exception):
    """A call the node refused or that could not be completed.

    `code` is the gRPC status code; `retry_safe` says the node guarantees the
    request was not applied, so repeating it cannot apply it twice."""

    def __init__(self, code: grpc.StatusCode, message: str, retry_safe: bool = False):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.retry_safe = retry_safe

    @classmethod
    def from_rpc(cls, error: grpc.RpcError) -> "HyperraftError":
        return cls(error.code(), error.details() or "", is_retry_safe(error))


def normalize_addresses(addresses: Union[str, Sequence[str]]) -> List[str]:
    """`"a:1,b:2"` or `["a:1", "b:2"]` as a list; refuses an empty one."""
    if isinstance(addresses, str):
        addresses = addresses.split(",")
    result = [address.strip() for address in addresses if address.strip()]
    if not result:
        raise ValueError("give at least one node address, e.g. 127.0.0.1:7101")
    if len(result) > CHANNELS_MAX // 2:
        raise ValueError(f"{len(result)} addresses; at most {CHANNELS_MAX // 2}")
    return result


def _trailing(error: grpc.RpcError) -> Dict[str, str]:
    try:
        metadata = error.trailing_metadata() or ()
    except Exception:  # not every RpcError is a call (e.g. a cancelled future)
        return {}
    return {key: value for key, value in metadata if isinstance(value, str)}


def leader_hint(error: grpc.RpcError) -> Tuple[int, Optional[str]]:
    """The leader a not-the-leader answer names: (id, address); (0, None)
    when it names none."""
    metadata = _trailing(error)
    try:
        leader_id = int(metadata.get(LEADER_ID_KEY, "0"))
    except ValueError:
        leader_id = 0
    address = metadata.get(LEADER_ADDRESS_KEY) or None
    return leader_id, address


def is_retry_safe(error: grpc.RpcError) -> bool:
    return _trailing(error).get(RETRY_SAFE_KEY) == "true"


def backoff(failures: int, base: float = 0.05, cap: float = 2.0) -> float:
    """Seconds to wait after `failures` failures in a row: doubling from
    `base`, at most `cap`, with jitter so that agents restarted together
    do not reconnect in step."""
    if failures <= 0:
        return 0.0
    ceiling = min(cap, base * (2 ** min(failures - 1, 16)))
    return random.uniform(ceiling / 2, ceiling)


class Connection:
    """Channels to a cluster's nodes, and which node to try next."""

    def __init__(self, addresses: Union[str, Sequence[str]], token: Optional[str] = None, tls: TlsArg = None):
        self.addresses = normalize_addresses(addresses)
        if token is not None and (not token or any(c in token for c in "\r\n")):
            raise ValueError("token must be a non-empty single line")
        self._metadata: Tuple[Tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        if tls is True:
            tls = Tls()
        elif tls is False:
            tls = None
        elif tls is not None and not isinstance(tls, Tls):
            raise TypeError("tls must be None, True or a hyperraft_agent.Tls")
        self._tls: Optional[Tls] = tls
        self._lock = threading.Lock()
        self._channels: Dict[str, grpc.Channel] = {}
        self._next = 0
        self._leader: Optional[str] = None

    def metadata(self) -> Tuple[Tuple[str, str], ...]:
        return self._metadata

    def channel(self, address: str) -> grpc.Channel:
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                if len(self._channels) >= CHANNELS_MAX:
                    # Close a learned address's channel, never a configured one.
                    stale = next((a for a in self._channels if a not in self.addresses), None)
                    if stale is not None:
                        self._channels.pop(stale).close()
                channel = self._open(address)
                self._channels[address] = channel
            return channel

    def _open(self, address: str) -> grpc.Channel:
        options = [
            ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
            ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
            # Reconnect quickly after a node restarts or a leader moves.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        if self._tls is None:
            return grpc.insecure_channel(address, options=options)
        credentials = grpc.ssl_channel_credentials(root_certificates=self._tls.ca_pem)
        if self._tls.domain:
            options.append(("grpc.ssl_target_name_override", self._tls.domain))
        return grpc.secure_channel(address, credentials, options=options)

    def pick(self) -> str:
        """The leader's address when known, else the next configured one."""
        with self._lock:
            if self._leader is not None:
                return self._leader
            address = self.addresses[self._next % len(self.addresses)]
            self._next += 1
            return address

    def learn_leader(self, address: Optional[str]) -> None:
        with self._lock:
            self._leader = address

    def failed(self, address: str) -> None:
        """`address` did not answer or does not lead: forget it as leader."""
        with self._lock:
            if self._leader == address:
                self._leader = None

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
