"""Where ``serve``'s API token comes from, and the one it generates when none is given:
owner-only, reused on the next start, named in the log but never written to it."""

from __future__ import annotations

import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from omconnect.runtime.serve.api_token import (
    GENERATED_TOKEN_FILE,
    TOKEN_FILE_VARIABLE,
    TOKEN_VARIABLE,
    ApiTokenError,
    kept_token,
    resolve_api_token,
)
from tests.support.served_worker import ServeProcess


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_named_file_wins_over_the_environment_which_wins_over_generating(
    tmp_path: Path,
) -> None:
    named = tmp_path / "token"
    named.write_text("from-the-file\n")
    state = tmp_path / "state"
    env = {TOKEN_VARIABLE: "from-the-environment"}

    token = resolve_api_token(str(named), state, env)
    assert (token.value, token.path, token.generated) == ("from-the-file", named, False)
    token = resolve_api_token(None, state, {**env, TOKEN_FILE_VARIABLE: str(named)})
    assert token.value == "from-the-file"
    token = resolve_api_token(None, state, env)
    assert (token.value, token.source, token.path) == (
        "from-the-environment",
        "$" + TOKEN_VARIABLE,
        None,
    )
    assert not state.exists(), "nothing generated while a token is given"

    token = resolve_api_token(None, state, {TOKEN_VARIABLE: "  "})
    assert token.generated and token.path == state / GENERATED_TOKEN_FILE
    assert "the-token" not in repr(token) and token.value not in repr(token)


def test_unusable_token_files_and_no_place_to_keep_one_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "huge").write_text("x" * 5000)
    for name, problem in [
        ("empty", "is empty"),
        ("huge", "larger than"),
        ("missing", "cannot read"),
    ]:
        with pytest.raises(ApiTokenError, match=problem) as caught:
            resolve_api_token(str(tmp_path / name), tmp_path, {})
        assert str(tmp_path / name) in str(caught.value)
    with pytest.raises(ApiTokenError, match="--token-file PATH or \\$OMCONNECT_API_TOKEN"):
        resolve_api_token(None, None, {})  # a postgresql:// state has no directory


def test_a_generated_token_is_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / GENERATED_TOKEN_FILE
    first = kept_token(path)
    assert first.generated and len(first.value) >= 40
    assert mode_of(path) == 0o600
    assert path.read_text() == first.value + "\n"

    path.chmod(0o644)  # restored from a backup with loose permissions
    again = kept_token(path)
    assert (again.value, again.generated) == (first.value, False)
    assert mode_of(path) == 0o600
    assert kept_token(tmp_path / "other" / GENERATED_TOKEN_FILE).value != first.value


def test_serve_without_a_token_generates_one_that_works(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    env: dict[str, str | None] = dict.fromkeys(
        (TOKEN_VARIABLE, TOKEN_FILE_VARIABLE, "OMCONNECT_STATE")
    )
    with ServeProcess(folder, tmp_path, env=env) as served:
        token_file = tmp_path / ".omconnect" / GENERATED_TOKEN_FILE
        assert mode_of(token_file) == 0o600
        token = token_file.read_text().strip()
        assert any(str(token_file) in line for line in served.logged), served.logged
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(served.url + "/pipelines", timeout=5)
        assert refused.value.code == 401
        authorized = {"Authorization": f"Bearer {token}"}
        request = urllib.request.Request(served.url + "/pipelines", headers=authorized)
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        served.process.terminate()
        served.process.wait()
        logged = served.output()
    assert token not in logged, "stderr is no terminal: the token stays out of the log"
