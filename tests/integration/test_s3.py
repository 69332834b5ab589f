"""The S3-compatible object store through boto3 against a real `lamina serve`: buckets, objects,
ranges, listing, copy, multipart, presigned URLs, and S3's XML errors."""

from __future__ import annotations

import hashlib
import http.client
import urllib.parse
import uuid

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.integration.conftest import ACCESS_KEY, SECRET_KEY, start_server, stop_server


def code_of(err: pytest.ExceptionInfo[ClientError]) -> str:
    return err.value.response["Error"]["Code"]


def test_buckets_are_created_listed_and_deleted(s3):
    """CreateBucket, HeadBucket, ListBuckets, DeleteBucket; a second create is BucketAlreadyOwnedByYou."""
    name = f"bk-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ClientError) as err:
        s3.create_bucket(Bucket=name)
    assert code_of(err) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as err:
        s3.delete_bucket(Bucket=name)
    assert code_of(err) == "BucketNotEmpty"
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as err:
        s3.head_bucket(Bucket=name)
    assert err.value.response["Error"]["Code"] == "404"
    with pytest.raises(ClientError) as err:
        s3.list_objects_v2(Bucket=name)
    assert code_of(err) == "NoSuchBucket"


def test_bad_bucket_names_are_refused(s3):
    for name in ("ab", "Upper-Case", "a..b", "192.168.1.1", "-start"):
        with pytest.raises(ClientError) as err:
            s3.create_bucket(Bucket=name)
        assert code_of(err) == "InvalidBucketName", name


def test_object_round_trip_with_metadata(s3, bucket):
    """PutObject then GetObject/HeadObject give back the bytes, ETag (MD5), Content-Type and x-amz-meta-*."""
    body = b"hello, object store"
    put = s3.put_object(Bucket=bucket, Key="greeting.txt", Body=body, ContentType="text/plain",
                        Metadata={"Colour": "blue", "n": "1"})
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="greeting.txt")
    assert got["Body"].read() == body
    assert (got["ContentType"], got["ContentLength"], got["ETag"]) == ("text/plain", len(body), put["ETag"])
    assert got["Metadata"] == {"colour": "blue", "n": "1"}
    head = s3.head_object(Bucket=bucket, Key="greeting.txt")
    assert head["ContentLength"] == len(body) and head["ETag"] == put["ETag"]
    assert head["LastModified"] == got["LastModified"]


def test_odd_keys_and_empty_objects(s3, bucket, server):
    """Keys with `..`, slashes, spaces, plus signs and odd Unicode are plain names; 0-byte objects work;
    nothing is written outside the object store."""
    keys = ["../../etc/passwd", "a/../b", "./x", "ünï cödé/🙂+plus&amp=1?.txt", "trailing/", "%2F..%2F",
            "tab\there", "x" * 1024]
    for i, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=f"body {i}".encode())
    for i, key in enumerate(keys):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == f"body {i}".encode(), key
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed, key=lambda k: k.encode()) == listed and set(listed) == set(keys)
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b"" and got["ContentLength"] == 0
    assert got["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="y" * 1025, Body=b"")
    assert code_of(err) == "InvalidArgument"
    stray = [p for p in server.data_dir.parent.rglob("passwd")]
    assert stray == []
    request = AWSRequest(method="PUT", url=f"{server.url}/{bucket}/bad%FFutf8", data=b"x")
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(request)
    status, _, body = plain("PUT", request.url, b"x", dict(request.headers))
    assert status == 400 and b"<Code>InvalidURI</Code>" in body


def test_ranges(s3, bucket):
    data = bytes(range(256)) * 4
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes 10-19/{len(data)}" and got["Body"].read() == data[10:20]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-5")["Body"].read() == data[-5:]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=1000-")["Body"].read() == data[1000:]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=1000-5000")["Body"].read() == data[1000:]
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(data)}-")
    assert code_of(err) == "InvalidRange"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_missing_things_are_s3_errors(s3, bucket):
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="no/such key")
    assert code_of(err) == "NoSuchKey" and err.value.response["Error"]["Key"] == "no/such key"
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket="no-such-bucket-here", Key="k")
    assert code_of(err) == "NoSuchBucket"
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key="nope")
    assert err.value.response["Error"]["Code"] == "404"
    s3.delete_object(Bucket=bucket, Key="never-there")  # idempotent, as on S3
    with pytest.raises(ClientError) as err:  # refused before its body is read: the connection closes
        s3.put_object(Bucket="no-such-bucket-here", Key="k", Body=b"z" * 3_000_000)
    assert code_of(err) == "NoSuchBucket"
    assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_wrong_secret_is_signature_does_not_match(server, bucket):
    bad = server.client("s3", secret="wrong")
    with pytest.raises(ClientError) as err:
        bad.list_objects_v2(Bucket=bucket)
    assert code_of(err) == "SignatureDoesNotMatch"
    unknown = server.client("s3", key="LKIAUNKNOWN000000000")
    with pytest.raises(ClientError) as err:
        unknown.list_objects_v2(Bucket=bucket)
    assert code_of(err) == "InvalidAccessKeyId"


def test_listing_prefix_delimiter_and_pages(s3, bucket):
    keys = [f"photos/2024/{i:03}.png" for i in range(7)] + ["photos/2025/a.png", "photos/readme", "docs/x", "top"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b".")
    out = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["docs/", "photos/"]
    assert [o["Key"] for o in out["Contents"]] == ["top"] and out["KeyCount"] == 3
    out = s3.list_objects_v2(Bucket=bucket, Prefix="photos/", Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["photos/2024/", "photos/2025/"]
    assert [o["Key"] for o in out["Contents"]] == ["photos/readme"]
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="photos/",
                                                              PaginationConfig={"PageSize": 3}))
    assert [len(p.get("Contents", [])) for p in pages] == [3, 3, 3]
    assert [o["Key"] for p in pages for o in p["Contents"]] == sorted(k for k in keys if k.startswith("photos/"))
    assert pages[0]["IsTruncated"] and not pages[-1]["IsTruncated"]
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="photos/2024/005.png", MaxKeys=2)
    assert [o["Key"] for o in after["Contents"]] == ["photos/2024/006.png", "photos/2025/a.png"]
    grouped = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Delimiter="/",
                                                                PaginationConfig={"PageSize": 1}))
    assert [(p.get("CommonPrefixes") or p.get("Contents"))[0].get("Prefix") or "top" for p in grouped] == \
        ["docs/", "photos/", "top"]
    v1 = s3.list_objects(Bucket=bucket, Prefix="docs/")
    assert [o["Key"] for o in v1["Contents"]] == ["docs/x"]


def test_copy_and_delete_objects(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me", ContentType="text/x", Metadata={"a": "1"})
    copied = s3.copy_object(Bucket=bucket, Key="dst one", CopySource={"Bucket": bucket, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"copy me").hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="dst one")
    assert got["Body"].read() == b"copy me" and got["Metadata"] == {"a": "1"} and got["ContentType"] == "text/x"
    s3.copy_object(Bucket=bucket, Key="dst2", CopySource=f"{bucket}/src", MetadataDirective="REPLACE",
                   Metadata={"b": "2"}, ContentType="text/y")
    got = s3.head_object(Bucket=bucket, Key="dst2")
    assert got["Metadata"] == {"b": "2"} and got["ContentType"] == "text/y"
    s3.delete_object(Bucket=bucket, Key="src")
    assert s3.get_object(Bucket=bucket, Key="dst one")["Body"].read() == b"copy me"  # a copy, not a link
    with pytest.raises(ClientError) as err:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "src"})
    assert code_of(err) == "NoSuchKey"
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "dst one"}, {"Key": "dst2"}, {"Key": "gone"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["dst one", "dst2", "gone"]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_multipart_upload(s3, bucket):
    """Parts (5 MiB minimum but the last) assemble in order; the ETag is md5-of-md5s-N; ListParts,
    InvalidPart, EntityTooSmall and AbortMultipartUpload answer as S3 does."""
    parts = [bytes([i]) * (5 * 1024 * 1024) for i in range(2)] + [b"tail"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big", ContentType="application/x-big",
                                        Metadata={"m": "v"})["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key="big", UploadId=upload, PartNumber=n + 1, Body=p)["ETag"]
             for n, p in enumerate(parts)]
    listed = s3.list_parts(Bucket=bucket, Key="big", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == \
        [(n + 1, len(p), etags[n]) for n, p in enumerate(parts)]
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 2, "ETag": '"0000"'}]})
    assert code_of(err) == "InvalidPart"
    done = s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]})
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    assert done["ETag"] == f'"{digest}-3"'
    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["ContentLength"] == sum(map(len, parts)) and got["ContentType"] == "application/x-big"
    assert hashlib.md5(got["Body"].read()).hexdigest() == hashlib.md5(b"".join(parts)).hexdigest()
    assert got["Metadata"] == {"m": "v"}
    with pytest.raises(ClientError) as err:
        s3.list_parts(Bucket=bucket, Key="big", UploadId=upload)
    assert code_of(err) == "NoSuchUpload"

    small = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("small", small)]
    copied = s3.upload_part_copy(Bucket=bucket, Key="small", UploadId=small, PartNumber=3,
                                 CopySource={"Bucket": bucket, "Key": "big"}, CopySourceRange="bytes=10-19")
    assert copied["CopyPartResult"]["ETag"] == f'"{hashlib.md5(parts[0][10:20]).hexdigest()}"'
    with pytest.raises(ClientError) as err:
        s3.upload_part_copy(Bucket=bucket, Key="small", UploadId=small, PartNumber=4,
                            CopySource={"Bucket": bucket, "Key": "big"}, CopySourceRange="bytes=10-")
    assert code_of(err) == "InvalidArgument"
    tags = [s3.upload_part(Bucket=bucket, Key="small", UploadId=small, PartNumber=n, Body=b"tiny")["ETag"]
            for n in (1, 2)]
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(Bucket=bucket, Key="small", UploadId=small, MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": t} for n, t in zip((1, 2), tags)]})
    assert code_of(err) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=small)
    with pytest.raises(ClientError) as err:
        s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=small)
    assert code_of(err) == "NoSuchUpload"


def plain(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    """A plain HTTP request, no SDK: (status, headers, body)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, parts.path + ("?" + parts.query if parts.query else ""), body=body,
                     headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("version", ["s3v4", None])
def test_presigned_get_and_put(server, bucket, version):
    """Presigned URLs (query-string SigV4, and boto3's default SigV2 form) work with a plain HTTP
    client; a tampered one is refused."""
    s3 = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                      aws_secret_access_key=SECRET_KEY, config=BotoConfig(signature_version=version))
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "via url"}, ExpiresIn=60)
    assert plain("PUT", put_url, b"uploaded by url")[0] == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "via url"}, ExpiresIn=60)
    status, _, body = plain("GET", get_url)
    assert (status, body) == (200, b"uploaded by url")
    assert ACCESS_KEY in get_url
    status, _, body = plain("GET", get_url.replace("via%20url", "via%20other"))
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    status, _, body = plain("GET", get_url, headers={"Range": "bytes=0-7"})
    assert (status, body) == (206, b"uploaded")


def test_lambda_api_is_unaffected(lam):
    """The Lambda API still answers on the same port."""
    assert "Functions" in lam.list_functions()


def test_objects_and_notifications_survive_a_restart(tmp_path):
    """Everything stored is on disk: a restarted server has the buckets, objects, uploads in progress
    and notification configurations."""
    first = start_server(tmp_path / "data", tmp_path / "log")
    try:
        s3 = first.client("s3")
        s3.create_bucket(Bucket="keep-me")
        s3.put_object(Bucket="keep-me", Key="k", Body=b"persisted", Metadata={"a": "b"})
        upload = s3.create_multipart_upload(Bucket="keep-me", Key="later")["UploadId"]
        tag = s3.upload_part(Bucket="keep-me", Key="later", UploadId=upload, PartNumber=1, Body=b"part")["ETag"]
    finally:
        assert stop_server(first) == 0
    second = start_server(tmp_path / "data", tmp_path / "log")
    try:
        s3 = second.client("s3")
        got = s3.get_object(Bucket="keep-me", Key="k")
        assert got["Body"].read() == b"persisted" and got["Metadata"] == {"a": "b"}
        s3.complete_multipart_upload(Bucket="keep-me", Key="later", UploadId=upload,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": tag}]})
        assert s3.get_object(Bucket="keep-me", Key="later")["Body"].read() == b"part"
    finally:
        assert stop_server(second) == 0


def test_concurrent_overwrites_and_reads_see_whole_versions(s3, bucket):
    """Readers racing writers of one key always get one complete version, never a mix or an error."""
    import concurrent.futures

    versions = {bytes([i]) * 300_000 for i in range(8)}  # above the inline limit: streamed from the file
    s3.put_object(Bucket=bucket, Key="hot", Body=b"\x00" * 300_000)

    def write(body: bytes) -> None:
        s3.put_object(Bucket=bucket, Key="hot", Body=body)

    def read(_: int) -> bytes:
        return s3.get_object(Bucket=bucket, Key="hot")["Body"].read()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        writes = [pool.submit(write, v) for v in versions]
        reads = [pool.submit(read, i) for i in range(24)]
        for future in writes:
            future.result()
        assert all(f.result() in versions for f in reads)
