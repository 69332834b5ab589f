"""A restart keeps versions, aliases, layers, tags and policies, and their number sequences."""

from __future__ import annotations

import json

from tests.conftest import make_zip
from tests.integration.conftest import start_server, stop_server

ROLE = "arn:aws:iam::000000000000:role/x"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:keeper"
LAYER = make_zip({"python/greeting.py": "WORDS = 'layer survived'\n"})


def code(tag: str) -> bytes:
    return make_zip({"app.py": f"import greeting\ndef handler(e, c):\n    return [{tag!r}, greeting.WORDS]\n"})


def test_versions_aliases_layers_tags_and_policies_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    first = start_server(data, tmp_path / "one.log")
    try:
        lam = first.client()
        layer = lam.publish_layer_version(LayerName="greetings", Content={"ZipFile": LAYER})["LayerVersionArn"]
        lam.add_layer_version_permission(LayerName="greetings", VersionNumber=1, StatementId="all",
                                         Action="lambda:GetLayerVersion", Principal="*")
        lam.create_function(FunctionName="keeper", Runtime="python3.11", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": code("one")}, Layers=[layer], Publish=True, Tags={"kept": "yes"})
        lam.update_function_code(FunctionName="keeper", ZipFile=code("two"), Publish=True)
        lam.create_alias(FunctionName="keeper", Name="live", FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
        lam.add_permission(FunctionName="keeper", Qualifier="live", StatementId="s",
                           Action="lambda:InvokeFunction", Principal="*")
        alias = lam.get_alias(FunctionName="keeper", Name="live")
        policy = lam.get_policy(FunctionName="keeper", Qualifier="live")
    finally:
        assert stop_server(first) == 0, first.output()
    second = start_server(data, tmp_path / "two.log")
    try:
        lam = second.client()
        versions = lam.list_versions_by_function(FunctionName="keeper")["Versions"]
        assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
        assert {k: v for k, v in lam.get_alias(FunctionName="keeper", Name="live").items()
                if k != "ResponseMetadata"} == {k: v for k, v in alias.items() if k != "ResponseMetadata"}
        assert lam.get_policy(FunctionName="keeper", Qualifier="live")["Policy"] == policy["Policy"]
        assert lam.list_tags(Resource=ARN)["Tags"] == {"kept": "yes"}
        assert json.loads(lam.get_layer_version_policy(LayerName="greetings", VersionNumber=1)["Policy"])["Statement"]
        assert lam.get_function(FunctionName="keeper", Qualifier="1")["Configuration"]["Layers"][0]["Arn"] == layer
        seen = set()
        for _ in range(30):
            out = lam.invoke(FunctionName="keeper:live")
            body = json.loads(out["Payload"].read())
            assert body[1] == "layer survived"
            seen.add((out["ExecutedVersion"], body[0]))
        assert seen == {("1", "one"), ("2", "two")}
        lam.update_function_configuration(FunctionName="keeper", Timeout=7)
        assert lam.publish_version(FunctionName="keeper")["Version"] == "3"
        again = lam.publish_layer_version(LayerName="greetings", Content={"ZipFile": LAYER})
        assert again["Version"] == 2
    finally:
        assert stop_server(second) == 0, second.output()
