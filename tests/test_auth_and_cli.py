"""Tokens, Supabase JWTs, and the `studio` command a newcomer runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import httpx
import jwt

from conftest import free_port, make_settings, serve, wait_for, wait_until_up
from server.config import REPO_ROOT
from test_replicate_client import slow_input


def test_token_scheme_and_bearer_both_work(server, alice):
    for scheme in ("Bearer", "Token"):
        response = httpx.get(f"{server.url}/v1/account", headers={"Authorization": f"{scheme} {alice.token}"})
        assert response.status_code == 200 and response.json()["username"] == "alice"
    assert httpx.get(f"{server.url}/v1/account", headers={"Authorization": "Basic abc"}).status_code == 401


def test_supabase_jwt_creates_the_user_on_first_sight(tmp_path, database_url, tiny_models):
    secret = "supabase-jwt-secret-for-tests-0123456789"
    with serve(make_settings(tmp_path, database_url, tiny_models, jwt_secret=secret)) as live:
        user_id = uuid.uuid4()
        claims = {"sub": str(user_id), "email": "artist@studio.example", "aud": "authenticated", "exp": int(time.time()) + 600}
        token = jwt.encode(claims, secret, algorithm="HS256")
        headers = {"Authorization": f"Bearer {token}"}
        first = httpx.get(f"{live.url}/v1/account", headers=headers)
        assert first.status_code == 200 and first.json()["username"] == "artist@studio.example"
        assert httpx.get(f"{live.url}/generations", headers=headers).json()["items"] == []
        forged = jwt.encode(claims, "another-secret-of-sufficient-length-000", algorithm="HS256")
        assert httpx.get(f"{live.url}/v1/account", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
        expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, secret, algorithm="HS256")
        assert httpx.get(f"{live.url}/v1/account", headers={"Authorization": f"Bearer {expired}"}).status_code == 401


def test_prefer_wait_that_runs_out_answers_starting(server, alice):
    with alice.http() as http:
        response = http.post(
            "/v1/models/black-forest-labs/flux-dev/predictions",
            json={"input": slow_input()},
            headers={"Prefer": "wait=1"},
        )
        assert response.status_code == 201
        body = response.json()
        assert body["status"] == "starting"  # the clients poll only after `starting`
        http.post(f"/v1/predictions/{body['id']}/cancel")


def studio_cli(*args, env, cwd=REPO_ROOT):
    return subprocess.run([sys.executable, "-m", "server.cli", *args], env=env, cwd=cwd, capture_output=True, text=True)


def test_flags_override_the_environment_which_overrides_dot_env(tmp_path):
    (tmp_path / ".env").write_text("STUDIO_DATA_DIR=from-dotenv\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("STUDIO_")}

    def database_used(*flags, **extra_env) -> str:
        result = studio_cli("db", "upgrade", *flags, env={**env, **extra_env}, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "from-dotenv/studio.db" in database_used()
    assert "from-env/studio.db" in database_used(STUDIO_DATA_DIR="from-env")
    assert "from-flag/studio.db" in database_used("--data-dir", "from-flag", STUDIO_DATA_DIR="from-env")
    assert {"from-dotenv", "from-env", "from-flag"} <= {path.name for path in tmp_path.iterdir()}


def test_users_create_prints_a_working_token_last(tmp_path, tiny_models):
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'data' / 'studio.db'}", tiny_models)
    env = {**os.environ, "STUDIO_DATA_DIR": str(settings.data_dir), "STUDIO_SECRET_KEY": "x"}
    result = studio_cli("users", "create", "carol", env=env)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    with serve(settings) as live:
        response = httpx.get(f"{live.url}/v1/account", headers={"Authorization": f"Bearer {token}"})
        assert response.json()["username"] == "carol"


def test_revoked_tokens_stop_working_and_a_new_one_works(tmp_path, tiny_models):
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'data' / 'studio.db'}", tiny_models, token_cache_s=1)
    env = {**os.environ, "STUDIO_DATA_DIR": str(settings.data_dir), "STUDIO_SECRET_KEY": "x"}
    leaked = studio_cli("users", "create", "dave", env=env).stdout.strip().splitlines()[-1]
    second = studio_cli("users", "token", "dave", env=env).stdout.strip().splitlines()[-1]
    revoked = studio_cli("users", "revoke", "dave", env=env)
    assert revoked.returncode == 0 and "revoked 2 token(s)" in revoked.stdout
    fresh = studio_cli("users", "token", "dave", env=env).stdout.strip().splitlines()[-1]
    assert studio_cli("users", "revoke", "nobody", env=env).returncode == 1
    with serve(settings) as live:
        def account(token: str) -> httpx.Response:
            return httpx.get(f"{live.url}/v1/account", headers={"Authorization": f"Bearer {token}"})

        assert account(leaked).status_code == 401 and account(second).status_code == 401
        assert account(fresh).json()["username"] == "dave"

        # revoked while the server runs: the token stops working once the server's memory of it
        # lapses (STUDIO_TOKEN_CACHE_S, 1 s here)
        revoked = studio_cli("users", "revoke", "dave", env=env)
        assert revoked.returncode == 0 and "revoked 1 token(s)" in revoked.stdout
        assert wait_for(lambda: account(fresh).status_code == 401, timeout=10)


def test_serve_on_an_empty_data_folder_prints_the_url_and_a_local_token(tmp_path, tiny_models):
    port = free_port()
    env = {**os.environ, "STUDIO_DATA_DIR": str(tmp_path / "fresh"), "STUDIO_MODELS_DIR": str(tiny_models)}
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
        env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = [process.stdout.readline(), process.stdout.readline()]
        assert f"http://127.0.0.1:{port}" in lines[0]
        token = lines[1].strip().rsplit(" ", 1)[-1]
        assert "local" in lines[1]
        wait_until_up(f"http://127.0.0.1:{port}")
        response = httpx.get(f"http://127.0.0.1:{port}/v1/account", headers={"Authorization": f"Bearer {token}"})
        assert response.json()["username"] == "local"
    finally:
        process.terminate()
        process.wait(15)
