"""The S3 front door: requests signed for service `s3` (path-style `/{bucket}/{key}`), their SigV4
check, one handler per operation, and the one place S3 errors become XML.

Routing is by method, by whether the path names a bucket or an object, and by S3's sub-resource query
parameters (`?uploads`, `?uploadId=`, `?delete`, `?notification`, `?list-type=2`, ...).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import re
import secrets
from urllib.parse import quote, unquote

from lamina.api import sigv4
from lamina.errors import AuthError, IncompleteSignature, InvalidParameterValue, InvalidSignature, UnrecognizedClient
from lamina.http.server import Request, Response
from lamina.s3 import errors as e, listing, notify, sigv2, xml
from lamina.s3.base import DEFAULT_CONTENT_TYPE, OWNER, XML, Deliver, FunctionExists, etag as _etag, log
from lamina.s3.body import FileChunks, document, read_range, receive
from lamina.s3.multipart import MultipartOperations
from lamina.s3.ranges import parse_range
from lamina.s3.store import ObjectInfo
from lamina.s3.xml import Element as E

INLINE_BYTES = 256 * 1024  # smaller objects are answered in one write
MAX_CODE_BYTES = 262_144_000
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
#: Response headers a GET may override with `response-*` query parameters.
OVERRIDES = ("content-type", "content-language", "expires", "cache-control", "content-disposition",
             "content-encoding")
__all__ = ["Deliver", "FunctionExists", "S3Api", "is_s3_request", "streams_body", "valid_bucket_name"]


_V2_ERRORS: dict[str, type[e.S3Error]] = {
    "AccessDenied": e.AccessDenied, "InvalidAccessKeyId": e.InvalidAccessKeyId,
    "SignatureDoesNotMatch": e.SignatureDoesNotMatch,
}


def is_s3_request(method: str, url: str, headers: list[tuple[str, str]]) -> bool:
    """Cheap test on a raw request: signed with an S3 credential scope (header or presigned URL)."""
    authorization = next((value for name, value in headers if name.lower() == "authorization"), None)
    return sigv4.scope_service(authorization, url.partition("?")[2]) == "s3"


def streams_body(method: str, url: str, headers: list[tuple[str, str]]) -> bool:
    """PutObject and UploadPart bodies are streamed to disk, never buffered whole."""
    return method == "PUT" and not url.startswith("/_lamina/") and is_s3_request(method, url, headers)


def valid_bucket_name(name: str) -> bool:
    if not _BUCKET.match(name) or ".." in name or ".-" in name or "-." in name:
        return False
    try:
        ipaddress.IPv4Address(name)
        return False
    except ValueError:
        return True


class S3Api(MultipartOperations):
    # the door ----------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        request_id = secrets.token_hex(8).upper()
        host_id = base64.b64encode(secrets.token_bytes(48)).decode()
        request["s3_ids"] = (request_id, host_id)
        try:
            signed = self._authenticate(request)
            request["s3_signed"] = signed
            response = await self._route(request, signed)
        except e.S3Error as exc:
            response = self._error(exc, request)
        except Exception:
            log.exception("internal error on S3 %s %s", request.method, request.raw_path)
            response = self._error(e.InternalError(), request)
        response.headers["x-amz-request-id"] = request_id
        response.headers["x-amz-id-2"] = host_id
        return response

    def _error(self, exc: e.S3Error, request: Request) -> Response:
        children: list[xml.Node] = [E("Code", exc.aws_code), E("Message", exc.message)]
        children += [E(name, value) for name, value in exc.fields.items()]
        request_id, host_id = request["s3_ids"]
        children += [E("RequestId", request_id), E("HostId", host_id)]
        return Response(xml.document("Error", children, namespace=False), status=exc.http_status, content_type=XML)

    def _authenticate(self, request: Request) -> sigv4.S3Signed:
        path, _, query = request.raw_path.partition("?")
        if "X-Amz-Credential=" not in query and sigv2.is_presigned_v2(query):
            try:
                access_key = sigv2.verify_presigned(request.method, path, query, list(request.headers.items()),
                                                    self._secret_for, self._clock.time())
            except sigv2.SigV2Error as exc:
                raise _V2_ERRORS[exc.code](exc.message) from None
            principal = sigv4.Principal(access_key, self._region, "s3", "")
            return sigv4.S3Signed(principal, sigv4.UNSIGNED_PAYLOAD, "", "", "", b"")
        try:
            return sigv4.verify_s3(method=request.method, raw_path=path, raw_query=query,
                                   headers=list(request.headers.items()), secret_for=self._secret_for,
                                   now=dt.datetime.fromtimestamp(self._clock.time(), tz=dt.timezone.utc))
        except UnrecognizedClient:
            raise e.InvalidAccessKeyId() from None
        except InvalidSignature as exc:
            if "expired" in exc.message or "not yet current" in exc.message:
                raise e.AccessDenied("Request has expired" if "expired" in exc.message else exc.message) from None
            if "x-amz-content-sha256" in exc.message:
                raise e.InvalidArgument(exc.message) from None
            raise e.SignatureDoesNotMatch() from None
        except IncompleteSignature as exc:
            raise e.AccessDenied(exc.message) from None
        except AuthError as exc:
            raise e.AccessDenied(exc.message) from None

    async def _route(self, request: Request, signed: sigv4.S3Signed) -> Response:
        path = request.raw_path.partition("?")[0]
        bucket, _, raw_key = path.lstrip("/").partition("/")
        try:
            bucket = unquote(bucket, errors="strict")
            key = unquote(raw_key, errors="strict") if raw_key else ""
        except UnicodeDecodeError:
            raise e.InvalidURI() from None
        q = request.query
        method = request.method
        if not bucket:
            if method == "GET":
                return self.list_buckets(request)
            raise e.MethodNotAllowed()
        if not key:
            if method == "PUT":
                sent = await document(request)
                if "notification" in q:
                    return self.put_notification(sent, bucket)
                return self.create_bucket(sent, bucket)
            if method == "GET":
                if "notification" in q:
                    return self.get_notification(bucket)
                if "location" in q:
                    self._bucket(bucket)
                    location = "" if self._region == "us-east-1" else self._region
                    return Response(xml.document("LocationConstraint", [location]), content_type=XML)
                if "uploads" in q:
                    return self.list_uploads(request, bucket)
                if "versions" in q or "policy" in q or "acl" in q:
                    raise e.NotImplementedError_("lamina does not implement this bucket sub-resource.")
                return self.list_objects(request, bucket)
            if method == "HEAD":
                self._bucket(bucket)
                return Response(headers={"x-amz-bucket-region": self._region})
            if method == "DELETE":
                return self.delete_bucket(bucket)
            if method == "POST" and "delete" in q:
                return await self.delete_objects(request, signed, bucket)
            raise e.MethodNotAllowed()
        if method == "PUT":
            if "partNumber" in q or "uploadId" in q:
                return await self.upload_part(request, signed, bucket, key)
            if request.headers.get("x-amz-copy-source"):
                return await self.copy_object(request, bucket, key)
            return await self.put_object(request, signed, bucket, key)
        if method in ("GET", "HEAD"):
            if "uploadId" in q and method == "GET":
                return self.list_parts(request, bucket, key)
            return await self.get_object(request, bucket, key, head=method == "HEAD")
        if method == "DELETE":
            if "uploadId" in q:
                return await self.abort_upload(request, bucket, key)
            return await self.delete_object(request, bucket, key)
        if method == "POST":
            if "uploads" in q:
                return self.create_upload(request, bucket, key)
            if "uploadId" in q:
                return await self.complete_upload(request, bucket, key)
        raise e.MethodNotAllowed()

    async def code_package(self, bucket: str, key: str) -> bytes:
        """An object's bytes as a function's code (CreateFunction / UpdateFunctionCode with
        Code.S3Bucket/S3Key); errors worded as Lambda words them."""
        try:
            info = self._object(bucket, key)
        except e.S3Error as exc:
            raise InvalidParameterValue(f"Error occurred while GetObject. S3 Error Code: {exc.aws_code}. "
                                        f"S3 Error Message: {exc.message}") from None
        if info.size > MAX_CODE_BYTES:
            raise InvalidParameterValue(f"Unzipped size must be smaller than {MAX_CODE_BYTES} bytes")
        return await asyncio.get_running_loop().run_in_executor(
            None, read_range, self._store.path_of(info.file), 0, info.size)

    # buckets -----------------------------------------------------------------------------------

    def list_buckets(self, request: Request) -> Response:
        buckets = [E("Bucket", [E("Name", b.name), E("CreationDate", xml.timestamp(b.created))])
                   for b in self._store.buckets()]
        return Response(xml.document("ListAllMyBucketsResult", [E("Owner", OWNER), E("Buckets", buckets)]),
                        content_type=XML)

    def create_bucket(self, document: bytes, name: str) -> Response:
        if not valid_bucket_name(name):
            raise e.InvalidBucketName(BucketName=name)
        region = self._region
        if document.strip():
            constraint = xml.text(xml.parse(document), "LocationConstraint")
            if constraint:
                region = constraint
        if not self._store.create_bucket(name, region, self._clock.time()):
            raise e.BucketAlreadyOwnedByYou(BucketName=name)
        return Response(headers={"Location": f"/{name}"})

    def delete_bucket(self, name: str) -> Response:
        outcome = self._store.delete_bucket(name)
        if outcome == "missing":
            raise e.NoSuchBucket(BucketName=name)
        if outcome == "not-empty":
            raise e.BucketNotEmpty(BucketName=name)
        return Response(status=204)

    def put_notification(self, document: bytes, bucket: str) -> Response:
        self._bucket(bucket)
        targets = notify.parse_configuration(document)
        missing = [t.function_arn for t in targets if not self._function_exists(t.function_arn)]
        if missing:
            fields: dict[str, str] = {}
            for i, arn in enumerate(missing, start=1):
                fields[f"ArgumentName{i}"] = arn
                fields[f"ArgumentValue{i}"] = "Not authorized to invoke function [" + arn + "]"
            raise e.InvalidArgument("Unable to validate the following destination configurations", **fields)
        self._store.set_notification(bucket, notify.dump(targets) if targets else None)
        return Response()

    def get_notification(self, bucket: str) -> Response:
        return Response(notify.render(self._targets(bucket)), content_type=XML)

    # listing -----------------------------------------------------------------------------------

    def list_objects(self, request: Request, bucket: str) -> Response:
        self._bucket(bucket)
        q = request.query
        v2 = q.get("list-type") == "2"
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        raw_max = q.get("max-keys", "1000")
        if not raw_max.isdigit():
            raise e.InvalidArgument("Provided max-keys not an integer or within integer range",
                                    ArgumentName="max-keys", ArgumentValue=raw_max)
        max_keys = min(int(raw_max), 1000)
        if q.get("encoding-type", "url") != "url":
            raise e.InvalidArgument("Invalid Encoding Method specified in Request", ArgumentName="encoding-type",
                                    ArgumentValue=q["encoding-type"])
        url = q.get("encoding-type") == "url"
        enc = (lambda s: quote(s, safe="/")) if url else (lambda s: s)
        after = ""
        if v2:
            token = q.get("continuation-token")
            start_after = q.get("start-after", "")
            if token is not None:
                try:
                    after = listing.untoken(token)
                except ValueError:
                    raise e.InvalidArgument("The continuation token provided is incorrect",
                                            ArgumentName="continuation-token") from None
            else:
                after = start_after
        else:
            after = q.get("marker", "")
        page = listing.page(lambda a, n: self._store.list_objects(bucket, prefix, a, n),
                            prefix, delimiter, after, max_keys)
        contents = [E("Contents", [
            E("Key", enc(o.key)), E("LastModified", xml.timestamp(o.modified)), E("ETag", _etag(o.etag)),
            E("Size", o.size), E("StorageClass", "STANDARD")]) for o in page.contents  # type: ignore[attr-defined]
        ]
        prefixes = [E("CommonPrefixes", E("Prefix", enc(p))) for p in page.common_prefixes]
        children: list[xml.Node] = [E("IsTruncated", page.truncated), contents, E("Name", bucket),
                                    E("Prefix", enc(prefix))]
        if delimiter:
            children.append(E("Delimiter", enc(delimiter)))
        children.append(E("MaxKeys", max_keys))
        children.append(prefixes)
        if url:
            children.append(E("EncodingType", "url"))
        if v2:
            children.append(E("KeyCount", len(page.contents) + len(page.common_prefixes)))
            if "continuation-token" in q:
                children.append(E("ContinuationToken", q["continuation-token"]))
            if "start-after" in q:
                children.append(E("StartAfter", enc(q["start-after"])))
            if page.truncated and page.next_after is not None:
                children.append(E("NextContinuationToken", listing.token(page.next_after)))
        else:
            children.append(E("Marker", enc(q.get("marker", ""))))
            if page.truncated and delimiter and page.next_after is not None:
                children.append(E("NextMarker", enc(page.next_after.rstrip(listing.PAST))))
        return Response(xml.document("ListBucketResult", children), content_type=XML)

    # objects -----------------------------------------------------------------------------------

    async def put_object(self, request: Request, signed: sigv4.S3Signed, bucket: str, key: str) -> Response:
        self._check_key(key)
        self._bucket(bucket)
        written = await receive(request, signed, self._store)
        content_type, meta = self._metadata(request)
        stored = await self._blocking(self._store.put_object, bucket, key, written.path, written.size,
                                      written.md5, content_type or DEFAULT_CONTENT_TYPE, meta, self._clock.time())
        if stored is None:
            raise e.NoSuchBucket(BucketName=bucket)
        info, sequence = stored
        await self._notify(request, "ObjectCreated:Put", bucket, key, info.size, info.etag, sequence)
        return Response(headers={"ETag": _etag(info.etag)})

    async def get_object(self, request: Request, bucket: str, key: str, head: bool) -> Response:
        try:
            return await self._get_object(request, bucket, key, head)
        except FileNotFoundError:  # overwritten or deleted between the lookup and the open: look again
            return await self._get_object(request, bucket, key, head)

    async def _get_object(self, request: Request, bucket: str, key: str, head: bool) -> Response:
        info = self._object(bucket, key)
        headers = {"ETag": _etag(info.etag), "Last-Modified": xml.http_date(info.modified),
                   "Accept-Ranges": "bytes"}
        for name, value in info.metadata.items():
            headers[name] = value
        q = request.query
        for name in OVERRIDES:
            if f"response-{name}" in q:
                headers[name] = q[f"response-{name}"]
        content_type = headers.pop("content-type", None) or info.content_type or DEFAULT_CONTENT_TYPE
        condition = self._conditions(request, info)
        if condition is not None:
            return condition
        start, end, status = 0, info.size - 1, 200
        spec = request.headers.get("range")
        if spec is not None:
            wanted = parse_range(spec, info.size)
            if wanted == "unsatisfiable":
                raise e.InvalidRange(RangeRequested=spec, ActualObjectSize=str(info.size))
            if wanted is not None:
                start, end = wanted
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
        length = max(end - start + 1, 0)
        if head:
            return Response(status=status, headers=headers, content_type=content_type, length=length)
        path = self._store.path_of(info.file)
        if length <= INLINE_BYTES:
            data = await asyncio.get_running_loop().run_in_executor(None, read_range, path, start, length)
            return Response(data, status=status, headers=headers, content_type=content_type)
        handle = open(path, "rb")  # opened now: a delete or overwrite from here on unlinks, never truncates
        return Response(status=status, headers=headers, content_type=content_type, length=length,
                        stream=FileChunks(handle, start, length))

    @staticmethod
    def _conditions(request: Request, info: ObjectInfo) -> Response | None:
        etag = _etag(info.etag)
        if_match = request.headers.get("if-match")
        if if_match is not None and if_match.strip() not in (etag, "*", info.etag):
            raise e.PreconditionFailed(Condition="If-Match")
        if_none = request.headers.get("if-none-match")
        if if_none is not None and if_none.strip() in (etag, "*", info.etag):
            return Response(status=304, headers={"ETag": etag})
        return None

    async def delete_object(self, request: Request, bucket: str, key: str) -> Response:
        self._bucket(bucket)
        sequence = await self._blocking(self._store.delete_object, bucket, key)
        if sequence is not None:
            await self._notify(request, "ObjectRemoved:Delete", bucket, key, None, None, sequence)
        return Response(status=204)

    async def delete_objects(self, request: Request, signed: sigv4.S3Signed, bucket: str) -> Response:
        self._bucket(bucket)
        root = xml.parse(request.body)
        quiet = (xml.text(root, "Quiet") or "").strip().lower() == "true"
        keys = [xml.text(o, "Key") or "" for o in root.findall("Object")]
        if len(keys) > 1000:
            raise e.MalformedXML()
        out: list[xml.Node] = []
        for key in keys:
            sequence = await self._blocking(self._store.delete_object, bucket, key)
            if sequence is not None:
                await self._notify(request, "ObjectRemoved:Delete", bucket, key, None, None, sequence)
            if not quiet:
                out.append(E("Deleted", E("Key", key)))
        return Response(xml.document("DeleteResult", out), content_type=XML)

    async def copy_object(self, request: Request, bucket: str, key: str) -> Response:
        self._check_key(key)
        info = self._copy_source(request)
        source_bucket, source_key = info.bucket, info.key
        self._bucket(bucket)
        directive = (request.headers.get("x-amz-metadata-directive") or "COPY").upper()
        if directive == "REPLACE":
            content_type, meta = self._metadata(request)
            content_type = content_type or DEFAULT_CONTENT_TYPE
        else:
            if (source_bucket, source_key) == (bucket, key):
                raise e.InvalidRequest("This copy request is illegal because it is trying to copy an object to "
                                       "itself without changing the object's metadata, storage class, website "
                                       "redirect location or encryption attributes.")
            content_type, meta = info.content_type, info.metadata
        copy = await asyncio.get_running_loop().run_in_executor(None, self._store.copy_file, info.file)
        stored = await self._blocking(self._store.put_object, bucket, key, copy, info.size, info.etag, content_type,
                                      meta, self._clock.time())
        if stored is None:
            raise e.NoSuchBucket(BucketName=bucket)
        new, sequence = stored
        await self._notify(request, "ObjectCreated:Copy", bucket, key, new.size, new.etag, sequence)
        body = xml.document("CopyObjectResult", [E("LastModified", xml.timestamp(new.modified)),
                                                 E("ETag", _etag(new.etag))])
        return Response(body, content_type=XML)
