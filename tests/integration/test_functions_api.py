"""The function CRUD operations through boto3 against a running `lamina serve`."""

from __future__ import annotations

import base64
import hashlib
import io
import urllib.request
import zipfile

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_zip

ROLE = "arn:aws:iam::000000000000:role/x"
PY = make_zip({"app.py": "def handler(event, context):\n    return {'ok': True, 'event': event}\n"})


def create(lam, name, code=PY, **kw):
    args = dict(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE, Code={"ZipFile": code})
    args.update(kw)
    return lam.create_function(**args)


def code_of(err: ClientError) -> tuple[str, int]:
    return err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]


def test_create_get_and_delete(lam, fname):
    """Create answers 201 with State Pending; Get shows Active; Delete answers 204 and the function is gone."""
    out = create(lam, fname, Description="d", Timeout=5, MemorySize=256, Environment={"Variables": {"AA": "1"}})
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert out["State"] == "Pending" and out["StateReasonCode"] == "Creating"
    assert out["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{fname}"
    assert out["CodeSha256"] == base64.b64encode(hashlib.sha256(PY).digest()).decode()
    assert out["CodeSize"] == len(PY)
    lam.get_waiter("function_active_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 1})
    got = lam.get_function(FunctionName=fname)
    cfg = got["Configuration"]
    assert cfg["State"] == "Active" and cfg["LastUpdateStatus"] == "Successful"
    assert (cfg["Timeout"], cfg["MemorySize"], cfg["Description"]) == (5, 256, "d")
    assert cfg["Environment"] == {"Variables": {"AA": "1"}}
    assert cfg["LoggingConfig"]["LogGroup"] == f"/aws/lambda/{fname}"
    with urllib.request.urlopen(got["Code"]["Location"]) as resp:
        assert resp.read() == PY
    deleted = lam.delete_function(FunctionName=fname)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as err:
        lam.get_function(FunctionName=fname)
    assert err.value.response["Error"]["Message"] == (
        f"Function not found: arn:aws:lambda:us-east-1:000000000000:function:{fname}")


def test_code_location_link_is_time_limited(lam, fname):
    create(lam, fname)
    url = lam.get_function(FunctionName=fname)["Code"]["Location"]
    tampered = url.replace("signature=", "signature=0")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(tampered)
    assert err.value.code == 403


def test_get_by_arn_and_configuration(lam, fname):
    create(lam, fname)
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{fname}"
    assert lam.get_function_configuration(FunctionName=arn)["FunctionName"] == fname
    assert lam.get_function(FunctionName=f"000000000000:function:{fname}")["Configuration"]["FunctionArn"] == arn
    latest = lam.get_function_configuration(FunctionName=fname, Qualifier="$LATEST")
    assert latest["FunctionArn"] == arn + ":$LATEST"


def test_duplicate_create_conflicts(lam, fname):
    create(lam, fname)
    with pytest.raises(lam.exceptions.ResourceConflictException):
        create(lam, fname)


def test_list_functions_paginates(lam):
    names = [f"page-{i:02d}" for i in range(7)]
    for n in names:
        create(lam, n)
    seen = []
    for page in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 3}):
        assert len(page["Functions"]) <= 3
        seen += [f["FunctionName"] for f in page["Functions"]]
    assert set(names) <= set(seen)
    assert seen == sorted(seen)
    first = lam.list_functions(MaxItems=2)
    assert "State" not in first["Functions"][0]
    assert first["NextMarker"]


def test_update_configuration_and_code(lam, fname):
    out = create(lam, fname)
    upd = lam.update_function_configuration(FunctionName=fname, Timeout=10, Environment={"Variables": {"BB": "2"}})
    assert upd["LastUpdateStatus"] == "InProgress" and upd["Timeout"] == 10
    assert upd["RevisionId"] != out["RevisionId"]
    lam.get_waiter("function_updated_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 1})
    new_code = make_zip({"app.py": "def handler(e, c):\n    return 2\n"})
    upd2 = lam.update_function_code(FunctionName=fname, ZipFile=new_code)
    assert upd2["CodeSha256"] == base64.b64encode(hashlib.sha256(new_code).digest()).decode()
    assert upd2["Timeout"] == 10
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.update_function_configuration(FunctionName=fname, Timeout=11, RevisionId=out["RevisionId"])


def test_account_settings(lam):
    out = lam.get_account_settings()
    assert out["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert out["AccountLimit"]["CodeSizeZipped"] == 52428800
    assert out["AccountUsage"]["FunctionCount"] >= 0


@pytest.mark.parametrize("kw,code,message", [
    ({"MemorySize": 20000}, "ValidationException", "less than or equal to 10240"),
    ({"Timeout": 901}, "ValidationException", "less than or equal to 900"),
    ({"Runtime": "python2.7"}, "InvalidParameterValueException", "Available runtimes"),
    ({"Handler": "has space"}, "ValidationException", "regular expression"),
    ({"Environment": {"Variables": {"XX": "y" * 5000}}}, "InvalidParameterValueException", "4KB"),
])
def test_create_validation(lam, fname, kw, code, message):
    with pytest.raises(ClientError) as err:
        create(lam, fname, **kw)
    assert code_of(err.value) == (code, 400)
    assert message in err.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=fname)


def test_long_name_is_refused(lam):
    with pytest.raises(ClientError) as err:
        create(lam, "a" * 65)
    assert code_of(err.value) == ("ValidationException", 400)


def test_bad_zips_are_refused(lam, fname):
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="Could not unzip"):
        create(lam, fname, code=b"not a zip")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../../escape.py", "x")
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="outside the code directory"):
        create(lam, fname, code=buf.getvalue())


def test_delete_latest_qualifier_is_refused(lam, fname):
    create(lam, fname)
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match=r"\$LATEST version cannot be deleted"):
        lam.delete_function(FunctionName=fname, Qualifier="$LATEST")
