"""Submitting tasks and waiting for them.

Calls go to the leader: a node that does not lead answers UNAVAILABLE with
the leader's address, and the call is repeated there. A call is repeated
only where that is safe: reads and waits always, a submission only when the
node said it was not proposed (`hyperraft-retry-safe`), when the channel
never connected (nothing was sent), or when it carries an idempotency key
(a repeat returns the same task).
"""

import time
from typing import List, Optional, Sequence, Union

import grpc

from ._connection import Connection, HyperraftError, TlsArg, backoff, is_retry_safe, leader_hint
from ._proto import agent_pb2, agent_pb2_grpc

# The node's bounds on a submission (crates/hyperraft-wire/src/tasks.rs).
TASK_TYPE_BYTES_MAX = 128
PAYLOAD_BYTES_MAX = 1 << 20
REDUNDANCY_MAX = 7
ATTEMPTS_MAX = 16
IDEMPOTENCY_KEY_BYTES_MAX = 256

# Tries of one call across nodes before its error is raised.
TRIES_MAX = 8


class Client:
    """A client of the `Agents` service of one cluster.

    `addresses`: the nodes' gRPC API addresses (a list or "a:1,b:2");
    `token`: a bearer token (role write); `tls`: None for plaintext, True
    for TLS with the system's roots, or `Tls(ca_pem=..., domain=...)`;
    `timeout`: seconds one call may take (a wait adds its own timeout);
    `connect_timeout`: seconds to wait for a node to accept a connection
    before trying the next one."""

    def __init__(
        self,
        addresses: Union[str, Sequence[str]],
        token: Optional[str] = None,
        tls: TlsArg = None,
        timeout: float = 10.0,
        connect_timeout: float = 3.0,
    ):
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeout and connect_timeout must be positive")
        self._connection = Connection(addresses, token=token, tls=tls)
        self._timeout = timeout
        self._connect_timeout = connect_timeout

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def submit_task(
        self,
        task_type: str,
        payload: bytes = b"",
        *,
        redundancy: int = 1,
        agreement_percent: int = 0,
        deadline_ms: int = 0,
        attempts_max: int = 0,
        criticality: int = 0,
        idempotency_key: bytes = b"",
    ) -> int:
        """Submits a task and returns its id once committed. `redundancy`:
        copies run by distinct agents (1 to 7); `agreement_percent`: percent
        of them that must give the same output (0: a strict majority);
        `deadline_ms`: the task fails this long after submission (0: never);
        `attempts_max`: failed or released copies allowed (0: the node's 3)."""
        if isinstance(payload, str):
            raise TypeError("payload must be bytes (encode the text first)")
        payload = bytes(payload)
        if not 1 <= len(task_type.encode("utf-8")) <= TASK_TYPE_BYTES_MAX:
            raise ValueError(f"task_type: 1 to {TASK_TYPE_BYTES_MAX} bytes")
        if len(payload) > PAYLOAD_BYTES_MAX:
            raise ValueError(f"payload of {len(payload)} bytes exceeds {PAYLOAD_BYTES_MAX}")
        if not 1 <= redundancy <= REDUNDANCY_MAX:
            raise ValueError(f"redundancy: 1 to {REDUNDANCY_MAX}")
        if not 0 <= agreement_percent <= 100:
            raise ValueError("agreement_percent: 0 to 100")
        if not 0 <= attempts_max <= ATTEMPTS_MAX:
            raise ValueError(f"attempts_max: 0 to {ATTEMPTS_MAX}")
        if not 0 <= criticality <= 255:
            raise ValueError("criticality: 0 to 255")
        if deadline_ms < 0:
            raise ValueError("deadline_ms must not be negative")
        if len(idempotency_key) > IDEMPOTENCY_KEY_BYTES_MAX:
            raise ValueError(f"idempotency_key: at most {IDEMPOTENCY_KEY_BYTES_MAX} bytes")
        request = agent_pb2.SubmitTaskRequest(
            task_type=task_type,
            payload=payload,
            criticality=criticality,
            redundancy=redundancy,
            agreement_percent=agreement_percent,
            deadline_ms=deadline_ms,
            attempts_max=attempts_max,
            idempotency_key=bytes(idempotency_key),
        )
        response = self._call("SubmitTask", request, idempotent=bool(idempotency_key))
        return response.task_id

    def get_task(self, task_id: int) -> agent_pb2.GetTaskResponse:
        """The task's state, copies and reports (a `GetTaskResponse`)."""
        return self._call("GetTask", agent_pb2.GetTaskRequest(task_id=task_id), idempotent=True)

    def wait_task(self, task_id: int, timeout: float = 30.0) -> agent_pb2.GetTaskResponse:
        """Waits until the task finishes or `timeout` seconds pass; the
        answer then shows it still open (`status == TASK_STATUS_OPEN`)."""
        if timeout < 0:
            raise ValueError("timeout must not be negative")
        request = agent_pb2.WaitTaskRequest(task_id=task_id, timeout_ms=int(timeout * 1000))
        return self._call("WaitTask", request, idempotent=True, extra_time=timeout)

    def list_agents(self, agent_type: str = "") -> List[agent_pb2.AgentInfo]:
        """The registered agents of `agent_type`, or of every type."""
        response = self._call("ListAgents", agent_pb2.ListAgentsRequest(agent_type=agent_type), idempotent=True)
        return list(response.agents)

    def _call(self, method: str, request, *, idempotent: bool, extra_time: float = 0.0):
        connection = self._connection
        last: Optional[HyperraftError] = None
        for attempt in range(TRIES_MAX):
            address = connection.pick()
            channel = connection.channel(address)
            try:
                # Connect first: a channel that cannot connect has sent
                # nothing, so trying another node is always safe.
                grpc.channel_ready_future(channel).result(timeout=self._connect_timeout)
            except grpc.FutureTimeoutError:
                connection.failed(address)
                last = HyperraftError(grpc.StatusCode.UNAVAILABLE, f"cannot connect to {address}", True)
                time.sleep(backoff(attempt + 1))
                continue
            stub = agent_pb2_grpc.AgentsStub(channel)
            try:
                return getattr(stub, method)(
                    request, metadata=connection.metadata(), timeout=self._timeout + extra_time
                )
            except grpc.RpcError as error:
                last = HyperraftError.from_rpc(error)
                _, hint = leader_hint(error)
                connection.failed(address)
                if hint and hint != address:
                    connection.learn_leader(hint)
                retryable = error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
                if not retryable or not (idempotent or is_retry_safe(error)):
                    raise last from None
                if not hint:
                    time.sleep(backoff(attempt + 1))
        assert last is not None
        raise last
