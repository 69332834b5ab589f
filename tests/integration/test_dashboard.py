"""The dashboard at /ui: served by lamina itself, behind a login with the access key pair."""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.request

import pytest

from tests.conftest import make_zip
from tests.integration.conftest import ACCESS_KEY, SECRET_KEY


def opener():
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))


def call(browser, url, body=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    with browser.open(urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))) as r:
        return r.status, r.read()


def test_page_is_self_contained(server):
    status, page = call(opener(), server.url + "/ui")
    assert status == 200 and b"<title>lamina</title>" in page
    assert not re.search(rb"""(src|href)=["']https?://""", page), "no external assets"


def test_api_needs_a_login_and_a_correct_secret(server):
    browser = opener()
    with pytest.raises(urllib.error.HTTPError) as err:
        call(browser, server.url + "/ui/api/overview")
    assert err.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as err:
        call(browser, server.url + "/ui/login", {"accessKeyId": ACCESS_KEY, "secretAccessKey": "wrong"})
    assert err.value.code == 403


def test_overview_series_logs_and_invoke(server, lam, fname):
    lam.create_function(FunctionName=fname, Runtime="python3.11", Handler="app.handler",
                        Role="arn:aws:iam::000000000000:role/x",
                        Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    print('from ui')\n    return e\n"})})
    lam.invoke(FunctionName=fname, Payload=b'{"k": 1}')
    browser = opener()
    assert call(browser, server.url + "/ui/login", {"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY})[0] == 200
    overview = json.loads(call(browser, server.url + "/ui/api/overview")[1])
    row = next(f for f in overview["functions"] if f["name"] == fname)
    assert row["requests24h"] == 1 and row["coldStarts24h"] == 1 and row["cost24h"] > 0
    series = json.loads(call(browser, server.url + "/ui/api/series?minutes=60")[1])
    assert sum(m["requests"] for m in series["functions"][fname]) == 1
    invoked = json.loads(call(browser, server.url + "/ui/api/invoke", {"function": fname, "payload": '{"k": 2}'})[1])
    assert json.loads(invoked["payload"]) == {"k": 2} and invoked["functionError"] is None
    logs = json.loads(call(browser, server.url + f"/ui/api/logs?function={fname}")[1])["events"]
    assert any(e["message"] == "from ui" for e in logs)
    assert any(e["message"].startswith("REPORT RequestId:") for e in logs)
