"""A first walk through the web app (the full matrix is in test_web_routes.py)."""

from typing import Any

from .conftest import sign_in


def test_an_iro_raises_and_another_iro_cannot_see_it(web: Any) -> None:
    app = web[0]
    c = sign_in(app, "iro.ada")
    r = c.post("/alerts/new", data={"csrf_token": c.csrf, "child": "R100", "summary": "x",
                                    "do": "raise", "stage": "informal"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert c.get("/alerts/1").status_code == 200
    assert sign_in(app, "iro.ben").get("/alerts/1").status_code == 404


def test_the_report_page_for_iro_managers_only(web: Any) -> None:
    app = web[0]
    c = sign_in(app, "irom.cat")
    page = c.get("/reports/disputes?from=2027-01-01&to=2027-03-31")
    assert page.status_code == 200 and "Alerts raised" in page.text and "<svg" in page.text
    figures = c.get("/reports/disputes?from=2027-01-01&to=2027-03-31&format=json").json()
    assert figures["raised"] == 0
    assert sign_in(app, "tm.fay").get("/reports/disputes").status_code == 403
