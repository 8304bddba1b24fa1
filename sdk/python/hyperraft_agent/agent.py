"""The agent loop: one session at a time on the leader, assignments run on
a thread pool, results reported and re-sent until the node acknowledges
them.

The session protocol (proto/agent.proto, service `Agents`): the first
message registers; the node answers `Registered` with the agent id and how
often to heartbeat, then sends assignments, cancels and result
acknowledgements; it ends the stream with `Closing` (and the leader's
address, when known) when it stops leading or the agent broke a bound. An
agent that half-closes its side leaves for good: the node revokes its
lease and releases its running copies at once.
"""

import logging
import queue
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, Iterator, Mapping, Optional, Sequence, Union

import grpc

from ._connection import Connection, TlsArg, backoff, leader_hint
from ._proto import agent_pb2, agent_pb2_grpc

log = logging.getLogger("hyperraft_agent")

# The node's bounds (crates/hyperraft-wire/src/tasks.rs,
# crates/hyperraft-api/src/agents/session.rs), checked here so that a bad
# value fails at once with a clear message instead of at registration.
TASK_TYPE_BYTES_MAX = 128
MAX_CONCURRENT_MAX = 1024
TTL_MS_MIN = 1000
TTL_MS_MAX = 86_400_000
CAPABILITIES_MAX = 64
LABELS_MAX = 64
FIELD_BYTES_MAX = 256
OUTPUT_BYTES_MAX = 1 << 20
ERROR_BYTES_MAX = 4096

# Messages queued to the node in one session (heartbeats excluded); a
# handler that finds it full waits for room.
OUTBOUND_MAX = 256
# Heartbeat period before the node says how often it wants one.
FIRST_HEARTBEAT_S = 1.0
# How long `stop()` waits for the node to end the session after the agent
# half-closed it, before cancelling the call.
STOP_GRACE_S = 5.0
# Hinted reconnects in a row without backoff; more means the hints are
# stale (an election is under way) and the loop backs off.
HINTED_RETRIES_MAX = 3

# Codes after which reconnecting cannot help: the agent's options or
# credentials are wrong.
FATAL_CODES = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNIMPLEMENTED,
)

Output = Union[bytes, bytearray, memoryview, str]


class AgentError(Exception):
    """The agent cannot run: the node refused its registration or its
    credentials for good."""


class Task:
    """One copy of a task assigned to this agent."""

    __slots__ = ("id", "type", "payload", "attempt", "deadline", "run_timeout", "_cancelled")

    def __init__(self, assignment: agent_pb2.Assignment):
        self.id: int = assignment.task_id
        self.type: str = assignment.task_type
        self.payload: bytes = assignment.payload
        # Which copy this is: 1 for the first assigned, counting failed and
        # released ones.
        self.attempt: int = assignment.attempt
        # Unix time in seconds after which the task fails; None for none.
        self.deadline: Optional[float] = (
            assignment.deadline_unix_ms / 1000.0 if assignment.deadline_unix_ms else None
        )
        # Seconds the node waits for a result before it gives the task to
        # another agent.
        self.run_timeout: float = assignment.run_timeout_ms / 1000.0
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        """True once the node no longer wants this copy (the task finished,
        the copy was released) or the agent stops; a long handler should
        check it and return early. Its result is not reported."""
        return self._cancelled.is_set()

    def __repr__(self) -> str:
        return f"Task(id={self.id}, type={self.type!r}, attempt={self.attempt}, payload={len(self.payload)} bytes)"


def _truncate_utf8(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, at a character boundary."""
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= limit:
        return encoded.decode("utf-8")
    return encoded[:limit].decode("utf-8", errors="ignore")


def _outcome(handle: Callable[[Task], Output], task: Task) -> agent_pb2.TaskResult:
    """Runs the handler: its output, or the exception as a failed copy."""
    try:
        output = handle(task)
        if isinstance(output, str):
            output = output.encode("utf-8")
        elif isinstance(output, (bytearray, memoryview)):
            output = bytes(output)
        elif not isinstance(output, bytes):
            raise TypeError(f"the handler returned {type(output).__name__}, not bytes")
        if len(output) > OUTPUT_BYTES_MAX:
            raise ValueError(f"the output of {len(output)} bytes exceeds {OUTPUT_BYTES_MAX}")
        return agent_pb2.TaskResult(task_id=task.id, output=output)
    except Exception as error:  # every handler failure is reported, never raised
        log.debug("task %d failed", task.id, exc_info=True)
        reason = f"{type(error).__name__}: {error}"
        return agent_pb2.TaskResult(task_id=task.id, error=_truncate_utf8(reason, ERROR_BYTES_MAX))


def _check_field(name: str, text: str) -> None:
    if not isinstance(text, str) or len(text.encode("utf-8")) > FIELD_BYTES_MAX:
        raise ValueError(f"{name}: a string of at most {FIELD_BYTES_MAX} bytes")


def _cancel_later(call) -> None:
    """Cancels `call` after the stop grace: the node ends the stream once it
    handled the agent's leave, but the agent does not wait on it for ever."""
    stopper = threading.Timer(STOP_GRACE_S, call.cancel)
    stopper.daemon = True
    stopper.start()


class _Outbound:
    """What one session sends: queued messages, and a heartbeat whenever the
    period passes. Its `messages()` is the request stream grpc reads from
    its own thread; `finish()` ends it, which half-closes the session."""

    _END = object()
    _WAKE = object()

    def __init__(self, register: agent_pb2.AgentToNode):
        self._queue: "queue.Queue[object]" = queue.Queue(maxsize=OUTBOUND_MAX)
        self._queue.put_nowait(register)
        self._period = FIRST_HEARTBEAT_S
        self._next_heartbeat = time.monotonic() + self._period
        self.open = True

    def set_heartbeat_interval(self, seconds: float) -> None:
        self._period = max(0.001, seconds)
        self._next_heartbeat = min(self._next_heartbeat, time.monotonic() + self._period)
        try:
            # Wake the stream, which may be waiting out the old period.
            self._queue.put_nowait(self._WAKE)
        except queue.Full:
            pass  # a full queue wakes it soon enough

    def send(self, message: agent_pb2.AgentToNode, alive: Callable[[], bool]) -> bool:
        """Queues `message`, waiting for room while `alive()`; False when
        the session ended first."""
        while self.open and alive():
            try:
                self._queue.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def finish(self) -> None:
        self.open = False
        try:
            self._queue.put_nowait(self._END)
        except queue.Full:
            # A full queue: drop what waits (the session is over) and end.
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._queue.put_nowait(self._END)

    def messages(self) -> Iterator[agent_pb2.AgentToNode]:
        heartbeat = agent_pb2.AgentToNode(heartbeat=agent_pb2.Heartbeat())
        while True:
            now = time.monotonic()
            if now >= self._next_heartbeat:
                self._next_heartbeat = now + self._period
                yield heartbeat
                continue
            try:
                item = self._queue.get(timeout=self._next_heartbeat - now)
            except queue.Empty:
                continue
            if item is self._END:
                return
            if item is self._WAKE:
                continue
            yield item  # type: ignore[misc]


class Agent:
    """An agent of one task type.

    Decorator form::

        agent = Agent("summarize", max_concurrent=4)

        @agent.handler
        def run(task):
            return summarize(task.payload)

        agent.run(["127.0.0.1:7101", "127.0.0.1:7102"])

    Class form: subclass and override `handle(self, task) -> bytes`.

    A handler returns bytes (a str is sent as UTF-8); an exception it raises
    is reported as a failed copy with the exception's text, and the node
    retries the task on another agent while its attempts last.
    """

    def __init__(
        self,
        agent_type: str,
        *,
        max_concurrent: int = 1,
        capabilities: Sequence[str] = (),
        labels: Optional[Mapping[str, str]] = None,
        ttl: Optional[float] = None,
    ):
        encoded = agent_type.encode("utf-8") if isinstance(agent_type, str) else b""
        if not 1 <= len(encoded) <= TASK_TYPE_BYTES_MAX or "/" in agent_type:
            raise ValueError(f"agent_type: 1 to {TASK_TYPE_BYTES_MAX} bytes without '/'")
        if not isinstance(max_concurrent, int) or not 1 <= max_concurrent <= MAX_CONCURRENT_MAX:
            raise ValueError(f"max_concurrent: 1 to {MAX_CONCURRENT_MAX}")
        ttl_ms = 0 if ttl is None else int(ttl * 1000)
        if ttl is not None and not TTL_MS_MIN <= ttl_ms <= TTL_MS_MAX:
            raise ValueError(f"ttl: {TTL_MS_MIN / 1000} to {TTL_MS_MAX / 1000} seconds, or None for the node's default")
        capabilities = list(capabilities)
        labels = dict(labels or {})
        if len(capabilities) > CAPABILITIES_MAX or len(labels) > LABELS_MAX:
            raise ValueError(f"at most {CAPABILITIES_MAX} capabilities and {LABELS_MAX} labels")
        for capability in capabilities:
            _check_field("capabilities", capability)
        for key, value in labels.items():
            _check_field("labels", key)
            _check_field("labels", value)
        self.agent_type = agent_type
        self.max_concurrent = max_concurrent
        self.capabilities = capabilities
        self.labels = labels
        self.ttl_ms = ttl_ms
        self._handler: Optional[Callable[[Task], Output]] = None
        self._stopping = threading.Event()
        self._lock = threading.RLock()
        # Guarded by `_lock`:
        self._agent_id = 0
        self._running: Dict[int, Task] = {}
        # Results sent but not yet acknowledged, re-sent after a resumed
        # registration. At most one per running copy plus those in flight,
        # so bounded by `_pending_max`; a handler waits for room.
        self._pending: Dict[int, agent_pb2.TaskResult] = {}
        self._pending_max = 2 * max_concurrent + 16
        self._room = threading.Condition(self._lock)
        self._outbound: Optional[_Outbound] = None
        self._call: Optional[grpc.RpcContext] = None
        # Counters, for people and tests.
        self.sessions = 0
        self.registrations = 0
        self.results_accepted = 0

    # -- the handler -------------------------------------------------------

    def handler(self, function: Callable[[Task], Output]) -> Callable[[Task], Output]:
        """Decorator: `function(task)` runs each assignment."""
        if not callable(function):
            raise TypeError("the handler must be callable")
        self._handler = function
        return function

    def handle(self, task: Task) -> Output:
        """Runs one copy of a task; override in a subclass, or use
        `@agent.handler`."""
        if self._handler is None:
            raise NotImplementedError("no handler: decorate one with @agent.handler or override handle()")
        return self._handler(task)

    # -- state ---------------------------------------------------------------

    @property
    def agent_id(self) -> int:
        """The id the node gave (its lease id); 0 before registering."""
        with self._lock:
            return self._agent_id

    def stop(self) -> None:
        """Ends `run()`: the agent leaves (the node releases its running
        copies for other agents) and `run()` returns. Safe from any thread
        and from a signal handler."""
        # No lock here: a signal handler runs on the main thread, which may
        # hold it. Reading an attribute is atomic.
        self._stopping.set()
        outbound, call = self._outbound, self._call
        if outbound is not None:
            outbound.finish()
        if call is not None:
            _cancel_later(call)

    # -- the loop ------------------------------------------------------------

    def run(
        self,
        addresses: Union[str, Sequence[str]],
        token: Optional[str] = None,
        tls: TlsArg = None,
        *,
        handle_signals: bool = True,
    ) -> None:
        """Serves tasks until `stop()` (or SIGINT/SIGTERM, when called on the
        main thread and `handle_signals`). Follows the leader through
        `Closing` and UNAVAILABLE hints, reconnects with bounded exponential
        backoff and resumes its agent id while its lease lives. Raises
        `AgentError` when the node refuses the registration or the token."""
        if type(self).handle is Agent.handle and self._handler is None:
            raise NotImplementedError("no handler: decorate one with @agent.handler or override handle()")
        connection = Connection(addresses, token=token, tls=tls)
        self._stopping.clear()
        restore = self._install_signals() if handle_signals else {}
        executor = ThreadPoolExecutor(
            max_workers=self.max_concurrent, thread_name_prefix=f"hyperraft-agent-{self.agent_type}"
        )
        try:
            self._loop(connection, executor)
        finally:
            with self._lock:
                for task in self._running.values():
                    task._cancelled.set()
                self._room.notify_all()
            executor.shutdown(wait=False)
            connection.close()
            for signum, previous in restore.items():
                # None: the handler was not set from Python; the default is
                # the closest.
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)

    def _install_signals(self) -> Dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        restore = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            restore[signum] = signal.signal(signum, lambda *_: self.stop())
        return restore

    def _loop(self, connection: Connection, executor: ThreadPoolExecutor) -> None:
        failures = 0
        hinted = 0
        while not self._stopping.is_set():
            address = connection.pick()
            try:
                registered, hint = self._session(connection, address, executor)
            except grpc.RpcError as error:
                code = error.code()
                if code in FATAL_CODES:
                    raise AgentError(f"the node at {address} refused the agent: {code.name}: {error.details()}") from None
                _, hint = leader_hint(error)
                registered = False
                log.info("session on %s failed: %s: %s", address, code.name, error.details())
            if self._stopping.is_set():
                return
            connection.failed(address)
            if hint and hint != address:
                connection.learn_leader(hint)
            if registered:
                # It ran: reconnect at once (to the leader it named, if any).
                failures, hinted, delay = 0, 0, 0.0
            elif hint and hint != address and hinted < HINTED_RETRIES_MAX:
                # Sent elsewhere before registering: follow the hint at once,
                # a few times in a row (more means the hints are stale).
                hinted, delay = hinted + 1, 0.0
            else:
                failures += 1
                delay = backoff(failures)
            if delay:
                self._stopping.wait(delay)

    def _session(self, connection: Connection, address: str, executor: ThreadPoolExecutor):
        """One session on `address`. Returns (registered, leader address
        hint); raises grpc.RpcError when the call failed."""
        register = agent_pb2.Register(
            agent_type=self.agent_type,
            capabilities=self.capabilities,
            labels=self.labels,
            max_concurrent=self.max_concurrent,
            ttl_ms=self.ttl_ms,
            resume_agent_id=self.agent_id,
        )
        outbound = _Outbound(agent_pb2.AgentToNode(register=register))
        stub = agent_pb2_grpc.AgentsStub(connection.channel(address))
        call = stub.Session(outbound.messages(), metadata=connection.metadata())
        with self._lock:
            self._outbound = outbound
            self._call = call
        if self._stopping.is_set():  # stop() ran before the session was published
            outbound.finish()
            _cancel_later(call)
        self.sessions += 1
        registered = False
        try:
            for reply in call:
                kind = reply.WhichOneof("message")
                if kind == "registered":
                    registered = True
                    self._registered(reply.registered, outbound)
                elif kind == "assignment":
                    self._assigned(reply.assignment, executor)
                elif kind == "cancel":
                    self._cancelled(reply.cancel)
                elif kind == "result_ack":
                    self._acknowledged(reply.result_ack)
                elif kind == "closing":
                    closing = reply.closing
                    log.info("node at %s closed the session: %s", address, closing.reason)
                    return registered, closing.leader_address or None
            return registered, None
        except grpc.RpcError as error:
            if self._stopping.is_set() and error.code() == grpc.StatusCode.CANCELLED:
                return registered, None
            raise
        finally:
            with self._lock:
                self._outbound = None
                self._call = None
            outbound.finish()
            call.cancel()

    def _registered(self, registered: agent_pb2.Registered, outbound: _Outbound) -> None:
        outbound.set_heartbeat_interval(registered.heartbeat_interval_ms / 1000.0)
        with self._lock:
            self._agent_id = registered.agent_id
            self.registrations += 1
            if registered.resumed:
                # The node still holds this agent's copies: results it never
                # acknowledged may still count.
                resend = list(self._pending.values())
            else:
                # A new id: the old one's copies were released, and so were
                # the tasks it was running here.
                resend = []
                self._pending.clear()
                for task in self._running.values():
                    task._cancelled.set()
                self._room.notify_all()
        log.info(
            "agent %d %s (type %s, ttl %d ms)",
            registered.agent_id,
            "resumed" if registered.resumed else "registered",
            self.agent_type,
            registered.ttl_ms,
        )
        for result in resend:
            outbound.send(agent_pb2.AgentToNode(result=result), lambda: not self._stopping.is_set())

    def _assigned(self, assignment: agent_pb2.Assignment, executor: ThreadPoolExecutor) -> None:
        if self._stopping.is_set():
            return  # leaving: the node releases the copy for another agent
        task = Task(assignment)
        with self._lock:
            if task.id in self._running:
                return  # already running here
            if len(self._running) >= self.max_concurrent:
                # The node never sends more than max_concurrent; if it did,
                # refusing keeps the pool's queue bounded.
                overflow = True
            else:
                overflow = False
                self._running[task.id] = task
        if overflow:
            error = f"the agent already runs {self.max_concurrent} copies (max_concurrent)"
            self._report(agent_pb2.TaskResult(task_id=task.id, error=error), None)
            return
        executor.submit(self._run_one, task)

    def _run_one(self, task: Task) -> None:
        result = _outcome(self.handle, task)
        with self._lock:
            self._running.pop(task.id, None)
        if task.cancelled:
            return  # the node no longer wants it
        self._report(result, task)

    def _report(self, result: agent_pb2.TaskResult, task: Optional[Task]) -> None:
        """Keeps `result` until acknowledged and sends it on the current
        session; a later resumed session sends it again."""
        with self._lock:
            while len(self._pending) >= self._pending_max and not self._stopping.is_set():
                self._room.wait(0.1)
            if self._stopping.is_set() or (task is not None and task.cancelled):
                return
            self._pending[result.task_id] = result
            outbound = self._outbound
        if outbound is not None:
            outbound.send(agent_pb2.AgentToNode(result=result), lambda: not self._stopping.is_set())

    def _cancelled(self, cancel: agent_pb2.Cancel) -> None:
        with self._lock:
            task = self._running.get(cancel.task_id)
            self._pending.pop(cancel.task_id, None)
            self._room.notify_all()
        if task is not None:
            log.debug("task %d cancelled: %s", cancel.task_id, cancel.reason)
            task._cancelled.set()

    def _acknowledged(self, ack: agent_pb2.ResultAck) -> None:
        with self._lock:
            self._pending.pop(ack.task_id, None)
            self._room.notify_all()
            if ack.accepted:
                self.results_accepted += 1
        if not ack.accepted:
            log.info("the node refused the result of task %d: %s", ack.task_id, ack.error)


def run_agent(
    agent_type: str,
    handle: Callable[[Task], Output],
    addresses: Union[str, Sequence[str]],
    *,
    token: Optional[str] = None,
    tls: TlsArg = None,
    max_concurrent: int = 1,
    **options,
) -> None:
    """Shorthand: `Agent(agent_type, ...)` with `handle` as its handler, run
    until stopped."""
    agent = Agent(agent_type, max_concurrent=max_concurrent, **options)
    agent.handler(handle)
    agent.run(addresses, token=token, tls=tls)


__all__ = ["Agent", "AgentError", "Task", "run_agent"]
