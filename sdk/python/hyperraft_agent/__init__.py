"""The Python agent SDK of hyperraft.

An agent takes tasks of one type from the cluster and reports results::

    from hyperraft_agent import Agent

    agent = Agent("upper", max_concurrent=4)

    @agent.handler
    def run(task):
        return task.payload.upper()

    agent.run(["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"])

A client submits tasks and waits for them::

    from hyperraft_agent import Client, TaskStatus

    client = Client(["127.0.0.1:7101"])
    task_id = client.submit_task("upper", b"hello")
    task = client.wait_task(task_id, timeout=10)
    assert task.status == TaskStatus.TASK_STATUS_SUCCEEDED
"""

from ._connection import HyperraftError, Tls
from ._proto.agent_pb2 import TaskFailure, TaskStatus
from .agent import Agent, AgentError, Task, run_agent
from .client import Client

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentError",
    "Client",
    "HyperraftError",
    "Task",
    "TaskFailure",
    "TaskStatus",
    "Tls",
    "run_agent",
]
