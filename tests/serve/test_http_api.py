"""The HTTP API's errors, and secrets kept out of every response."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.support.served_worker import (
    ServedWorker,
    sink_ids,
    wait_until,
    write_orders,
    write_pipeline,
)


def test_errors_are_json_with_proper_status_codes(tmp_path: Path) -> None:
    write_orders(tmp_path / "in" / "a.csv", range(1, 3))
    write_pipeline(tmp_path / "pipelines", "orders", tmp_path, tmp_path / "in")

    with ServedWorker(tmp_path / "pipelines") as worker:
        for method, path in [
            ("GET", "/pipelines/nope/status"),
            ("PUT", "/pipelines/nope/pause"),
            ("POST", "/pipelines/nope/restart"),
            ("GET", "/pipelines/nope/offsets"),
            ("GET", "/pipelines/nope"),
        ]:
            error = worker.json(method, path, expect=404)
            assert error == {"error_code": 404, "message": "pipeline 'nope' not found"}
        assert worker.json("GET", "/no/such/thing", expect=404)["error_code"] == 404

        status, headers, body = worker.request("POST", "/pipelines/orders/status")
        assert status == 405 and json.loads(body)["error_code"] == 405
        assert headers["Allow"] == "GET, HEAD"
        status, headers, _ = worker.request("GET", "/pipelines/orders/pause")
        assert status == 405 and headers["Allow"] == "PUT"
        assert worker.request("DELETE", "/metrics")[0] == 405

        bad = worker.json("GET", "/pipelines?expand=everything", expect=400)
        assert bad["error_code"] == 400 and "expand" in bad["message"]

        worker.json("PUT", "/pipelines/orders/pause", expect=202)
        conflict = worker.json("POST", "/pipelines/orders/restart", expect=409)
        assert "paused" in conflict["message"]

        status, headers, body = worker.request("HEAD", "/health")
        assert status == 200 and body == b"" and headers["Content-Type"] == "application/json"


def test_malformed_requests_get_400_not_a_traceback(tmp_path: Path) -> None:
    write_orders(tmp_path / "in" / "a.csv", range(1, 3))
    write_pipeline(tmp_path / "pipelines", "orders", tmp_path, tmp_path / "in")

    with ServedWorker(tmp_path / "pipelines") as worker:
        for raw in [
            b"NONSENSE\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n",
            b"PUT /pipelines/orders/pause HTTP/1.1\r\nHost: localhost\r\nContent-Length: lots\r\n"
            b"Authorization: Bearer " + worker.token.encode() + b"\r\n\r\n",
        ]:
            with socket.create_connection(("127.0.0.1", worker.port), timeout=5) as connection:
                connection.sendall(raw)
                answer = b""
                while chunk := connection.recv(4096):
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400 "), answer
            assert json.loads(body)["error_code"] == 400
            assert b"Traceback" not in answer
        assert worker.status("orders")["state"] == "RUNNING"  # a bad request changed nothing


def test_a_file_secret_never_appears_in_any_response(tmp_path: Path) -> None:
    secret = "hunter2-very-secret"
    (tmp_path / "secret.txt").write_text(secret)
    hidden = tmp_path / secret  # the source folder is named after the secret
    folder = tmp_path / "pipelines"
    reference = "${file:" + str(tmp_path / "secret.txt") + "}"
    extra = f'description: "reads with token {reference}"\n'
    write_pipeline(folder, "leaky", tmp_path, tmp_path / reference, "*.csv", extra=extra)

    paths = [
        "/",
        "/health",
        "/metrics",
        "/pipelines",
        "/pipelines?expand=status&expand=info",
        "/pipelines/leaky",
        "/pipelines/leaky/status",
        "/pipelines/leaky/offsets",
        f"/pipelines/{secret}/status",
    ]

    def bodies(worker: ServedWorker) -> list[bytes]:
        return [worker.request("GET", path)[2] for path in paths]

    with ServedWorker(folder, backoff_initial=0.2, backoff_max=0.5) as worker:
        # Failing: the error names the folder, which is the secret.
        failed = wait_until(
            lambda: (s := worker.status("leaky"))["state"] == "FAILED" and s, what="FAILED"
        )
        assert "***" in failed["error"] and "no files match" in failed["error"]
        assert worker.status("leaky")["description"] == "reads with token ***"
        for body in bodies(worker):
            assert secret.encode() not in body

        # Running: offsets name the file inside the secret folder.
        write_orders(hidden / "a.csv", range(1, 3))
        wait_until(lambda: sink_ids(tmp_path / "out" / "leaky") == [1, 2], what="delivery")
        offsets = wait_until(
            lambda: (o := worker.json("GET", "/pipelines/leaky/offsets")["offsets"]) and o,
            what="offsets",
        )
        assert offsets[0]["partition"]["file"].endswith("***/a.csv")
        for body in bodies(worker):
            assert secret.encode() not in body


def test_a_bug_answers_500_with_no_detail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    with ServedWorker(folder) as worker:

        def broken(name: str) -> None:
            raise RuntimeError("hunter2 in a traceback")

        monkeypatch.setattr(worker.supervisor, "get", broken)
        status, headers, body = worker.request("GET", "/pipelines/x/status")
        assert (status, headers["Content-Type"]) == (500, "application/json")
        assert json.loads(body) == {
            "error_code": 500,
            "message": "internal error; see the worker's log",
        }
        assert worker.json("GET", "/health") == {"status": "ok"}, "the server goes on"
