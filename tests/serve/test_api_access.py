"""Who may use ``serve``'s API, over real HTTP to uvicorn: the bearer token, reads with and
without it, the served host names (DNS rebinding), cross-site writes from a web page."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from omconnect.runtime.serve import access_guard
from omconnect.runtime.serve.access_guard import ApiAccess
from tests.support.served_worker import ServedWorker, wait_until, write_orders, write_pipeline

READS = ["/", "/metrics", "/pipelines", "/pipelines/orders", "/pipelines/orders/status"]
WRITES = [("PUT", "/pipelines/orders/pause"), ("PUT", "/pipelines/orders/resume")]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_orders(tmp_path / "in" / "a.csv", range(1, 3))
    write_pipeline(tmp_path / "pipelines", "orders", tmp_path, tmp_path / "in")
    return tmp_path / "pipelines"


def assert_unauthorized(answer: tuple[int, object, bytes]) -> None:
    status, headers, body = answer
    assert status == 401, (status, body)
    assert headers["WWW-Authenticate"] == "Bearer"  # type: ignore[index]
    assert json.loads(body) == {"error_code": 401, "message": "Unauthorized"}  # no detail


def test_changes_need_the_token_and_a_wrong_one_is_refused(folder: Path) -> None:
    with ServedWorker(folder) as worker:
        for method, path in [*WRITES, ("POST", "/pipelines/orders/restart")]:
            assert_unauthorized(worker.request(method, path, authorized=False))
            for wrong in ("Bearer nope", f"Bearer {worker.token}x", "Bearer ", worker.token):
                assert_unauthorized(worker.request(method, path, headers={"Authorization": wrong}))
        assert worker.status("orders")["state"] == "RUNNING", "nothing refused changed a thing"

        worker.json("PUT", "/pipelines/orders/pause", expect=202)
        wait_until(lambda: worker.status("orders")["state"] == "PAUSED", what="PAUSED")
        worker.json("PUT", "/pipelines/orders/resume", expect=202)
        worker.json("POST", "/pipelines/orders/restart", expect=202)


def test_basic_auth_with_the_token_as_password_is_accepted(folder: Path) -> None:
    with ServedWorker(folder) as worker:

        def basic(pair: str) -> dict[str, str]:
            return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}

        assert worker.request("GET", "/pipelines", headers=basic(f"any:{worker.token}"))[0] == 200
        assert_unauthorized(worker.request("GET", "/pipelines", headers=basic(f"{worker.token}:")))
        assert_unauthorized(worker.request("GET", "/pipelines", headers=basic("any:nope")))
        assert_unauthorized(
            worker.request("GET", "/pipelines", headers={"Authorization": "Basic !"})
        )


def test_reads_need_the_token_by_default_but_health_does_not(folder: Path) -> None:
    with ServedWorker(folder) as worker:
        for path in READS:
            assert_unauthorized(worker.request("GET", path, authorized=False))
            assert worker.request("GET", path)[0] == 200, path
        status, headers, _ = worker.request("HEAD", "/pipelines", authorized=False)
        assert (status, headers["WWW-Authenticate"]) == (401, "Bearer")
        status, _, body = worker.request("GET", "/health", authorized=False)
        assert (status, json.loads(body)) == (200, {"status": "ok"})


def test_public_reads_open_reads_only(folder: Path) -> None:
    with ServedWorker(folder, public_reads=True) as worker:
        for path in READS:
            assert worker.request("GET", path, authorized=False)[0] == 200, path
        for method, path in WRITES:
            assert_unauthorized(worker.request(method, path, authorized=False))


def test_a_foreign_host_is_refused_except_for_health(folder: Path) -> None:
    """DNS rebinding: a page on rebind.example whose name now points at 127.0.0.1."""
    with ServedWorker(folder) as worker:
        port = worker.port
        for host in (f"rebind.example:{port}", "rebind.example", f"127.0.0.2:{port}", ""):
            for method, path in [("GET", "/pipelines"), *WRITES]:
                status, _, body = worker.request(method, path, headers={"Host": host})
                assert status == 421, (host, method, path, body)
        for host in (
            f"localhost:{port}",
            f"LOCALHOST:{port}",
            f"127.0.0.1:{port}",
            f"[::1]:{port}",
        ):
            assert worker.request("GET", "/pipelines", headers={"Host": host})[0] == 200, host
        health = worker.request("GET", "/health", headers={"Host": "rebind.example"})
        assert health[0] == 200
        assert worker.status("orders")["state"] == "RUNNING"

    with ServedWorker(folder, allowed_hosts=("omconnect.internal",)) as worker:
        headers = {"Host": f"omconnect.internal:{worker.port}"}
        assert worker.request("GET", "/pipelines", headers=headers)[0] == 200
        assert worker.request("GET", "/pipelines", headers={"Host": "other.internal"})[0] == 421


def test_a_cross_site_post_from_a_web_page_is_refused(folder: Path) -> None:
    with ServedWorker(folder) as worker:
        own = f"http://127.0.0.1:{worker.port}"
        text = {"Content-Type": "text/plain"}
        # What a page can send without a CORS preflight: no token, text/plain, its own Origin.
        page = {**text, "Origin": "http://attacker.example"}
        restart = ("POST", "/pipelines/orders/restart")
        assert worker.request(*restart, b"{}", page, authorized=False)[0] == 401
        # Even holding the token, another origin or a non-JSON body is refused.
        status, _, body = worker.request(*restart, b"{}", page)
        assert status == 403 and "attacker.example" in json.loads(body)["message"]
        assert worker.request(*restart, b"{}", {**text, "Origin": "null"})[0] == 403
        assert worker.request(*restart, b"{}", {**text, "Origin": own})[0] == 415
        assert worker.request(*restart, b"{}", text)[0] == 415
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert worker.request(*restart, b"a=1", form)[0] == 415
        assert worker.status("orders")["restarts"] == 0, "nothing refused restarted it"

        json_body = {"Content-Type": "application/json", "Origin": own}
        assert worker.request(*restart, b"{}", json_body)[0] == 202
        assert worker.request("PUT", "/pipelines/orders/pause")[0] == 202  # no body, no type
        # Reads are not state-changing: another Origin may not read them (no CORS headers)
        # but is not refused either.
        status, headers, _ = worker.request("GET", "/pipelines", headers=page)
        assert status == 200 and "Access-Control-Allow-Origin" not in headers


def test_the_token_comparison_is_constant_time_by_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every check, right or wrong or missing, compares two SHA-256 digests with
    ``hmac.compare_digest``: equal lengths, whatever was presented."""
    compared: list[tuple[bytes, bytes]] = []
    real = access_guard.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(access_guard.hmac, "compare_digest", spy)
    access = ApiAccess.served("the-token", "127.0.0.1")
    presented = ["Bearer the-token", "Bearer x", "Bearer " + "x" * 500, "", "Token the-token"]
    results = [access.authorized(value) for value in presented]
    assert results == [True, False, False, False, False]
    assert len(compared) == len(presented)
    assert all(len(a) == len(b) == 32 for a, b in compared)
