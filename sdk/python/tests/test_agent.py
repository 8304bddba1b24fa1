"""Unit tests of the SDK: handler outcomes, bounds and input checks, and the
session loop against an in-process gRPC server that plays a follower and a
leader. The end-to-end test against real nodes is
crates/hyperraft/tests/it/python_sdk.rs."""

import threading
import time
import unittest
from concurrent import futures

import grpc

from hyperraft_agent import Agent, AgentError, Client, Task
from hyperraft_agent._proto import agent_pb2, agent_pb2_grpc
from hyperraft_agent.agent import ERROR_BYTES_MAX, OUTPUT_BYTES_MAX, _outcome

PATIENCE = 30.0


def assignment(task_id=1, payload=b"abc", attempt=1):
    return agent_pb2.Assignment(task_id=task_id, task_type="t", payload=payload, attempt=attempt)


class OutcomeTest(unittest.TestCase):
    def test_outputs_and_failures_become_results(self):
        """Proves a handler's bytes or str become the output and anything it raises, or a wrong type, a failed copy."""
        task = Task(assignment())
        self.assertEqual(_outcome(lambda t: t.payload.upper(), task).output, b"ABC")
        self.assertEqual(_outcome(lambda t: "é", task).output, "é".encode("utf-8"))

        def boom(_):
            raise ValueError("bad input")

        self.assertEqual(_outcome(boom, task).error, "ValueError: bad input")
        self.assertTrue(_outcome(lambda t: 42, task).error.startswith("TypeError: "))
        too_big = _outcome(lambda t: b"x" * (OUTPUT_BYTES_MAX + 1), task)
        self.assertTrue(too_big.error.startswith("ValueError: the output of"), too_big.error)

    def test_a_long_error_is_cut_at_a_character_boundary(self):
        """Proves an exception text longer than the node's 4 KiB bound is cut to it, still valid UTF-8."""

        def long(_):
            raise RuntimeError("€" * 5000)

        error = _outcome(long, Task(assignment())).error
        encoded = error.encode("utf-8")
        self.assertLessEqual(len(encoded), ERROR_BYTES_MAX)
        self.assertGreater(len(encoded), ERROR_BYTES_MAX - 3)
        self.assertTrue(error.endswith("€"))


class InputTest(unittest.TestCase):
    def test_bad_options_are_refused_before_connecting(self):
        """Proves bad agent options and submissions raise ValueError without contacting a node."""
        for kwargs in ({"max_concurrent": 0}, {"max_concurrent": 1025}, {"ttl": 0.5}, {"capabilities": ["x" * 300]}):
            with self.assertRaises(ValueError):
                Agent("t", **kwargs)
        for bad_type in ("", "a/b", "x" * 129):
            with self.assertRaises(ValueError):
                Agent(bad_type)
        client = Client(["127.0.0.1:1"])
        with self.assertRaises(ValueError):
            client.submit_task("t", b"x" * ((1 << 20) + 1))
        with self.assertRaises(ValueError):
            client.submit_task("t", b"", redundancy=8)
        with self.assertRaises(TypeError):
            client.submit_task("t", "text")
        client.close()

    def test_an_agent_without_a_handler_refuses_to_run(self):
        """Proves run() without a handler raises instead of serving tasks it cannot run."""
        with self.assertRaises(NotImplementedError):
            Agent("t").run(["127.0.0.1:1"], handle_signals=False)


class Follower(agent_pb2_grpc.AgentsServicer):
    """A node that does not lead: it names the leader."""

    def __init__(self, leader_address):
        self.leader_address = leader_address
        self.sessions = 0

    def Session(self, requests, context):
        self.sessions += 1
        context.set_trailing_metadata(
            (("hyperraft-leader-id", "2"), ("hyperraft-leader-address", self.leader_address))
        )
        context.abort(grpc.StatusCode.UNAVAILABLE, "node 1 is not the leader")
        yield  # a generator, as the streaming method must be


class Leader(agent_pb2_grpc.AgentsServicer):
    """A leader. The first session assigns task 1, takes its result without
    acknowledging it and closes naming itself. The second must resume the
    agent id and send that result again; it then assigns task 2 and cancels
    it, and, once the handler saw the cancel, assigns task 3."""

    def __init__(self, saw_cancel):
        self.address = ""
        self.saw_cancel = saw_cancel
        self.registers = []
        self.results = []
        self.heartbeats = 0
        self.resumed = threading.Event()
        self.left = threading.Event()

    def _next_result(self, requests):
        for message in requests:
            kind = message.WhichOneof("message")
            if kind == "heartbeat":
                self.heartbeats += 1
            elif kind == "result":
                self.results.append(message.result)
                return message.result
        return None

    def Session(self, requests, context):
        first = next(requests)
        self.registers.append(first.register)
        second = len(self.registers) > 1
        registered = agent_pb2.Registered(agent_id=7, ttl_ms=3000, resumed=second, heartbeat_interval_ms=20)
        yield agent_pb2.NodeToAgent(registered=registered)
        if not second:
            yield agent_pb2.NodeToAgent(assignment=assignment())
            self._next_result(requests)
            closing = agent_pb2.Closing(reason="moving on", leader_id=2, leader_address=self.address)
            yield agent_pb2.NodeToAgent(closing=closing)
            return
        self.resumed.set()
        again = self._next_result(requests)
        yield agent_pb2.NodeToAgent(result_ack=agent_pb2.ResultAck(task_id=again.task_id, accepted=True))
        yield agent_pb2.NodeToAgent(assignment=assignment(task_id=2, payload=b"block"))
        yield agent_pb2.NodeToAgent(cancel=agent_pb2.Cancel(task_id=2, reason="finished elsewhere"))
        if self.saw_cancel.wait(PATIENCE):
            yield agent_pb2.NodeToAgent(assignment=assignment(task_id=3, payload=b"def"))
        while self._next_result(requests) is not None:
            pass
        # The agent half-closed its side: it left.
        self.left.set()


class Refuser(agent_pb2_grpc.AgentsServicer):
    def Session(self, requests, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "no such token")
        yield


def serve(servicer):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    agent_pb2_grpc.add_AgentsServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


class SessionTest(unittest.TestCase):
    def test_follows_hints_resends_unacknowledged_results_drops_cancelled_ones_and_leaves_on_stop(self):
        """Proves the loop follows a follower's UNAVAILABLE hint, runs an assignment and reports it, heartbeats, follows Closing to reconnect with resume_agent_id, sends an unacknowledged result again on the resumed session, reports nothing for a cancelled copy, and on stop() half-closes (leaves) and returns."""
        saw_cancel = threading.Event()
        leader = Leader(saw_cancel)
        leader_server, leader.address = serve(leader)
        follower = Follower(leader.address)
        follower_server, follower_address = serve(follower)
        agent = Agent("t", max_concurrent=2)

        @agent.handler
        def upper(task):
            if task.payload == b"block":
                deadline = time.monotonic() + PATIENCE
                while not task.cancelled and time.monotonic() < deadline:
                    time.sleep(0.005)
                saw_cancel.set()
                return b"too late"
            return task.payload.upper()

        runner = threading.Thread(target=agent.run, args=([follower_address],), kwargs={"handle_signals": False})
        runner.start()
        try:
            deadline = time.monotonic() + PATIENCE
            while not any(r.task_id == 3 for r in leader.results) and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertTrue(leader.resumed.is_set(), "the agent came back to the leader")
            self.assertTrue(saw_cancel.is_set(), "the handler saw the cancel")
            self.assertGreaterEqual(follower.sessions, 1)
            self.assertEqual([r.resume_agent_id for r in leader.registers], [0, 7])
            self.assertEqual(leader.registers[0].max_concurrent, 2)
            self.assertEqual(agent.agent_id, 7)
            self.assertEqual(agent.results_accepted, 1)
            while leader.heartbeats == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertGreater(leader.heartbeats, 0, "the agent heartbeats")
        finally:
            agent.stop()
            runner.join(PATIENCE)
            follower_server.stop(0)
            leader_server.stop(0)
        self.assertFalse(runner.is_alive(), "run() returned after stop()")
        self.assertTrue(leader.left.is_set(), "the agent half-closed its session")
        reported = [(r.task_id, r.output) for r in leader.results]
        self.assertEqual(reported, [(1, b"ABC"), (1, b"ABC"), (3, b"DEF")], "sent again once, nothing for task 2")

    def test_a_refused_token_ends_run_with_an_error(self):
        """Proves UNAUTHENTICATED is final: run() raises AgentError instead of retrying for ever."""
        server, address = serve(Refuser())
        agent = Agent("t")
        agent.handler(lambda task: b"")
        try:
            with self.assertRaises(AgentError):
                agent.run([address], handle_signals=False)
        finally:
            server.stop(0)


if __name__ == "__main__":
    unittest.main()
