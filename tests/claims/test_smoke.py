def test_create_and_read(client, desk):
    editor = desk.person("editor")
    r = client.post("/api/v1/claims", json={"text": "40 people died"}, headers=editor.headers)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = client.get(f"/api/v1/claims/{cid}", headers=editor.headers)
    assert r.status_code == 200
    assert r.headers["etag"] == '"1"'
