#!/usr/bin/env python3
"""An agent that upper-cases its tasks' payloads.

    python examples/echo_agent.py 127.0.0.1:7101 127.0.0.1:7102 127.0.0.1:7103

A payload that is not UTF-8 makes the handler raise, which the node records
as a failed copy and retries on another agent while attempts last.
Ctrl-C (or SIGTERM) stops it: the agent leaves and its running copies go
to other agents.
"""

import argparse
import logging
import os
import sys

from hyperraft_agent import Agent, Task, Tls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("addresses", nargs="+", help="gRPC API addresses of the nodes, e.g. 127.0.0.1:7101")
    parser.add_argument("--type", default="upper", help="the task type to serve (default: upper)")
    parser.add_argument("--token", default=os.environ.get("HYPERRAFT_TOKEN"), help="bearer token (default: $HYPERRAFT_TOKEN)")
    parser.add_argument("--ca", help="the cluster CA (PEM) when the API speaks TLS")
    parser.add_argument("--tls-domain", help="the name in the node certificates, when the addresses are not names in it")
    parser.add_argument("--max-concurrent", type=int, default=4, help="copies run at once (default: 4)")
    parser.add_argument("--ttl", type=float, help="lease TTL in seconds (default: the node's)")
    parser.add_argument(
        "--fail-first-attempt",
        action="store_true",
        help="raise on a task's first attempt, to watch the node retry it on another agent",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    tls = None
    if args.ca or args.tls_domain:
        ca_pem = None
        if args.ca:
            with open(args.ca, "rb") as file:
                ca_pem = file.read()
        tls = Tls(ca_pem=ca_pem, domain=args.tls_domain)

    agent = Agent(args.type, max_concurrent=args.max_concurrent, ttl=args.ttl, labels={"example": "echo_agent"})

    @agent.handler
    def upper(task: Task) -> bytes:
        if args.fail_first_attempt and task.attempt == 1:
            raise RuntimeError(f"attempt {task.attempt} of task {task.id} fails on purpose")
        # Raises UnicodeDecodeError for a payload that is not UTF-8.
        return task.payload.decode("utf-8").upper().encode("utf-8")

    agent.run(args.addresses, token=args.token, tls=tls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
