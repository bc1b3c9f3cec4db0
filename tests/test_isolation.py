"""One user never sees, changes or fetches another's predictions, generations or files.

Checked through the API on both databases, and on PostgreSQL also below the API: a session bound
to a user sees only that user's rows even in a query with no WHERE clause (row-level security).
"""

from __future__ import annotations

import http.client
import io
import time
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from server.db.models import CreativeGeneration

SMALL = {"width": 256, "height": 256, "num_inference_steps": 1}


def make_prediction(caller, prompt: str) -> dict:
    """A finished prediction (and so a generation row), made with `Prefer: wait`."""
    with caller.http() as http:
        response = http.post(
            "/v1/models/black-forest-labs/flux-schnell/predictions",
            json={"input": {"prompt": prompt, **SMALL}},
            headers={"Prefer": "wait"},
        )
    assert response.status_code == 201, response.text
    prediction = response.json()
    assert prediction["status"] == "succeeded", prediction
    return prediction


def upload(caller, data: bytes) -> dict:
    with caller.http() as http:
        response = http.post("/v1/files", files={"content": ("notes.txt", io.BytesIO(data), "text/plain")})
    assert response.status_code == 201, response.text
    return response.json()


def generation_of(caller, prediction_id: str) -> dict:
    with caller.http() as http:
        items = http.get("/generations").json()["items"]
    (generation,) = [g for g in items if g["metadata"]["prediction_id"] == prediction_id]
    return generation


def raw_get(base_url: str, path: str) -> tuple[int, bytes]:
    """GET with the path sent byte for byte: httpx would resolve `..` before sending it."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# -- through the API ----------------------------------------------------------------------------


def test_predictions_are_private(server, alice, bob):
    theirs = make_prediction(alice, "alice's fox")
    mine = make_prediction(bob, "bob's owl")
    with bob.http() as http:
        response = http.get(f"/v1/predictions/{theirs['id']}")
        assert response.status_code == 404, response.text
        assert theirs["id"] in response.json()["detail"]
        assert "alice" not in response.text

        listed = [p["id"] for p in http.get("/v1/predictions").json()["results"]]
        assert listed == [mine["id"]]

        assert http.post(f"/v1/predictions/{theirs['id']}/cancel").status_code == 404
        # the SSE stream is not a way in either: it needs the signature from alice's own JSON
        assert http.get(f"/v1/predictions/{theirs['id']}/stream").status_code == 403

    with alice.http() as http:
        still = http.get(f"/v1/predictions/{theirs['id']}").json()
        assert still["status"] == "succeeded" and still["input"]["prompt"] == "alice's fox"
        assert [p["id"] for p in http.get("/v1/predictions").json()["results"]] == [theirs["id"]]


def unsigned(generation: dict) -> dict:
    """The generation with its URLs' expiry and signature cut off."""
    return {key: value.split("?")[0] if key.endswith("_url") and value else value for key, value in generation.items()}


def test_generations_are_private(server, alice, bob):
    theirs = generation_of(alice, make_prediction(alice, "alice's castle")["id"])
    mine = generation_of(bob, make_prediction(bob, "bob's boat")["id"])
    with bob.http() as http:
        assert http.get(f"/generations/{theirs['id']}").status_code == 404
        assert http.delete(f"/generations/{theirs['id']}").status_code == 404
        assert [g["id"] for g in http.get("/generations").json()["items"]] == [mine["id"]]
        # the list shows the same row as the single GET (URLs are signed per request: compare paths)
        [listed] = http.get("/generations", params={"type": "image"}).json()["items"]
        assert unsigned(listed) == unsigned(http.get(f"/generations/{mine['id']}").json())

    # bob's DELETE changed nothing: the row and its files are still alice's
    with alice.http() as http:
        kept = http.get(f"/generations/{theirs['id']}")
        assert kept.status_code == 200 and kept.json()["prompt"] == "alice's castle"
        assert [g["id"] for g in http.get("/generations").json()["items"]] == [theirs["id"]]
        assert httpx.get(kept.json()["result_url"]).status_code == 200
    with server.studio.db.system() as session:
        assert session.get(CreativeGeneration, uuid.UUID(theirs["id"])) is not None


def test_uploaded_files_are_private(server, alice, bob):
    theirs = upload(alice, b"alice's secret palette")
    mine = upload(bob, b"bob's notes")
    with bob.http() as http:
        assert http.get(f"/v1/files/{theirs['id']}").status_code == 404
        assert http.delete(f"/v1/files/{theirs['id']}").status_code == 404
        assert [f["id"] for f in http.get("/v1/files").json()["results"]] == [mine["id"]]
    with alice.http() as http:
        assert http.get(f"/v1/files/{theirs['id']}").json()["size"] == len(b"alice's secret palette")


# -- signed file URLs -----------------------------------------------------------------------------


def test_output_urls_need_a_valid_unexpired_signature(server, alice):
    url = make_prediction(alice, "a signed lighthouse")["output"][0]
    assert httpx.get(url).status_code == 200  # as given: fetched with no token
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    bare = f"{parts.scheme}://{parts.netloc}{parts.path}"
    key = parts.path.removeprefix("/files/")

    def status(params: dict | None, headers: dict | None = None) -> int:
        response = httpx.get(bare if params is None else f"{bare}?{urlencode(params)}", headers=headers)
        assert not response.content.startswith(b"\x89PNG")
        return response.status_code

    assert status(None) == 403  # no signature at all
    assert status(None, alice.headers) == 403  # a token is no substitute for the signature
    assert status({"expires": query["expires"]}) == 403
    flipped = ("0" if query["sig"][0] != "0" else "1") + query["sig"][1:]
    assert status({**query, "sig": flipped}) == 403  # tampered signature
    assert status({**query, "expires": int(query["expires"]) + 3600}) == 403  # extended expiry
    assert status({**query, "expires": "not-a-number"}) in (403, 422)

    # a correctly signed URL whose time is up
    store = server.studio.store
    expired = store.sign(key, server.url, now=time.time() - store.ttl_s - 60)
    assert httpx.get(expired).status_code == 403
    # ...and the same signature does not open another stored file
    other = make_prediction(alice, "another lighthouse")["output"][0]
    other_key = urlsplit(other).path.removeprefix("/files/")
    assert other_key != key
    assert httpx.get(f"{parts.scheme}://{parts.netloc}/files/{other_key}?{parts.query}").status_code == 403


TRAVERSALS = [
    "/files/../../etc/passwd",
    "/files/../../../../../../etc/passwd",
    "/files/%2e%2e/%2e%2e/etc/passwd",
    "/files/..%2f..%2f..%2fetc%2fpasswd",
    "/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd?expires=9999999999&sig=00",
    "/files/ab/../../../../etc/passwd",
    "/files//etc/passwd",
    "/files/%2fetc%2fpasswd",
    "/files/../secret.key",
    "/files/%2e%2e/secret.key",
    "/files/%2e%2e/studio.db",
    "/files/..\\..\\etc\\passwd",
]


def test_path_traversal_never_reads_outside_the_outputs(server, alice):
    make_prediction(alice, "something to find")  # the outputs folder exists and holds files
    secret = server.settings.signing_key
    for path in TRAVERSALS:
        status, body = raw_get(server.url, path)
        assert status in (400, 403, 404), (path, status, body[:200])
        assert b"root:" not in body, path
        assert secret not in body, path
        assert b"SQLite format" not in body, path
    # A valid signature does not make a key outside the outputs' shape readable: the key is
    # refused before the signature is even checked.
    expires = int(time.time()) + 600
    for key in ("../../etc/passwd", "../secret.key", "../studio.db", "/etc/passwd"):
        query = urlencode({"expires": expires, "sig": server.studio.store.sign_token(key, expires)})
        status, body = raw_get(server.url, f"/files/{key}?{query}")
        assert status in (400, 403, 404), (key, status, body[:200])
        assert b"root:" not in body and secret not in body and b"SQLite format" not in body, key


# -- below the API: row-level security on PostgreSQL ------------------------------------------------


def test_row_level_security_hides_other_users_rows(server, alice, bob):
    if not server.settings.db_url.startswith("postgresql"):
        pytest.skip("row-level security is PostgreSQL's")
    theirs = make_prediction(alice, "alice's rows")
    upload(alice, b"alice's file")
    mine = make_prediction(bob, "bob's rows")
    upload(bob, b"bob's file")
    db = server.studio.db

    with db.for_user(bob.user_id) as session:
        seen = {
            table: session.execute(text(f"SELECT * FROM {table}")).mappings().all()
            for table in ("predictions", "creative_generations", "files", "api_tokens", "users")
        }
    # each query has no WHERE: only the policies keep alice's rows out, and bob still sees his own
    for table in ("predictions", "creative_generations", "files", "api_tokens"):
        owners = {row["user_id"] for row in seen[table]}
        assert owners == {bob.user_id}, (table, owners)
    assert [row["id"] for row in seen["predictions"]] == [mine["id"]]
    assert [row["id"] for row in seen["users"]] == [bob.user_id]

    with db.for_user(bob.user_id) as session:
        # not by id either, and not by changing it
        assert session.execute(text("SELECT id FROM predictions WHERE id = :id"), {"id": theirs["id"]}).all() == []
        changed = session.execute(text("UPDATE predictions SET error = 'bob was here' WHERE id = :id"), {"id": theirs["id"]})
        assert changed.rowcount == 0
        deleted = session.execute(text("DELETE FROM creative_generations WHERE user_id = :uid"), {"uid": alice.user_id})
        assert deleted.rowcount == 0
        session.commit()
    # nor can he write a row in alice's name (the policies' WITH CHECK)
    with db.for_user(bob.user_id) as session, pytest.raises(DBAPIError, match="row-level security"):
        session.execute(
            text("UPDATE predictions SET user_id = :alice WHERE id = :id"), {"alice": alice.user_id, "id": mine["id"]}
        )

    with db.system() as session:
        for table in ("predictions", "creative_generations", "files"):
            owners = {row[0] for row in session.execute(text(f"SELECT user_id FROM {table}"))}
            assert owners == {alice.user_id, bob.user_id}, (table, owners)
        error = session.execute(text("SELECT error FROM predictions WHERE id = :id"), {"id": theirs["id"]}).scalar()
        assert error is None
