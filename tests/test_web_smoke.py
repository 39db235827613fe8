from tests.conftest import sign_in
def test_smoke(web):
    app, clock, rt = web
    c = sign_in(app, "iro.ada")
    r = c.post("/alerts/new", data={"csrf_token": c.csrf, "child": "R100", "summary": "x", "do": "raise", "stage": "informal"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert c.get("/alerts/1").status_code == 200
    assert sign_in(app, "iro.ben").get("/alerts/1").status_code == 404
