#!/usr/bin/env python3
"""Submits one task, waits for it, and prints the outcome as JSON.

    python examples/submit_task.py 127.0.0.1:7101 127.0.0.1:7102 --type upper --payload "hello"

Exits 0 when the task succeeded, 1 when it failed or is still open after
--timeout, 2 when the cluster refused the call.
"""

import argparse
import json
import os
import sys

from hyperraft_agent import Client, HyperraftError, TaskFailure, TaskStatus, Tls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("addresses", nargs="+", help="gRPC API addresses of the nodes, e.g. 127.0.0.1:7101")
    parser.add_argument("--type", default="upper", help="the task type (default: upper)")
    parser.add_argument("--payload", default="", help="the payload, as UTF-8 text")
    parser.add_argument("--redundancy", type=int, default=1, help="copies run by distinct agents, 1 to 7")
    parser.add_argument("--attempts-max", type=int, default=0, help="failed copies allowed (default: the node's 3)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the outcome")
    parser.add_argument("--token", default=os.environ.get("HYPERRAFT_TOKEN"), help="bearer token (default: $HYPERRAFT_TOKEN)")
    parser.add_argument("--ca", help="the cluster CA (PEM) when the API speaks TLS")
    parser.add_argument("--tls-domain", help="the name in the node certificates, when the addresses are not names in it")
    args = parser.parse_args()

    tls = None
    if args.ca or args.tls_domain:
        ca_pem = None
        if args.ca:
            with open(args.ca, "rb") as file:
                ca_pem = file.read()
        tls = Tls(ca_pem=ca_pem, domain=args.tls_domain)

    with Client(args.addresses, token=args.token, tls=tls) as client:
        try:
            task_id = client.submit_task(
                args.type,
                args.payload.encode("utf-8"),
                redundancy=args.redundancy,
                attempts_max=args.attempts_max,
            )
            task = client.wait_task(task_id, timeout=args.timeout)
        except HyperraftError as error:
            print(json.dumps({"error": error.code.name, "message": error.message}))
            return 2
    print(
        json.dumps(
            {
                "task_id": task.task_id,
                "status": TaskStatus.Name(task.status),
                "output": task.output.decode("utf-8", errors="replace"),
                "failure": TaskFailure.Name(task.failure),
                "attempts_used": task.attempts_used,
                "reports": [
                    {"agent_id": r.agent_id, "ok": r.ok, "data": r.data.decode("utf-8", errors="replace")}
                    for r in task.reports
                ],
            }
        )
    )
    return 0 if task.status == TaskStatus.TASK_STATUS_SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
