"""Multipart uploads: create, upload a part (or copy one from an object), list parts and uploads,
abort, complete (parts >= 5 MiB but the last; ETag = MD5 of the parts' MD5s + "-N")."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import quote

from lamina.api import sigv4
from lamina.http.server import Request, Response
from lamina.s3 import errors as e, xml
from lamina.s3.base import DEFAULT_CONTENT_TYPE, OWNER, XML, Operations, etag as _etag
from lamina.s3.body import receive
from lamina.s3.ranges import parse_range, range_length
from lamina.s3.xml import Element as E

MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10000


class MultipartOperations(Operations):
    def create_upload(self, request: Request, bucket: str, key: str) -> Response:
        self._check_key(key)
        self._bucket(bucket)
        content_type, meta = self._metadata(request)
        upload = self._store.create_upload(bucket, key, content_type or DEFAULT_CONTENT_TYPE, meta,
                                           self._clock.time())
        body = xml.document("InitiateMultipartUploadResult", [E("Bucket", bucket), E("Key", key),
                                                              E("UploadId", upload.id)])
        return Response(body, content_type=XML)

    def _upload(self, request: Request, bucket: str, key: str) -> str:
        upload_id = request.query.get("uploadId", "")
        upload = self._store.upload(upload_id)
        if upload is None or (upload.bucket, upload.key) != (bucket, key):
            self._bucket(bucket)
            raise e.NoSuchUpload(UploadId=upload_id)
        return upload_id

    async def upload_part(self, request: Request, signed: sigv4.S3Signed, bucket: str, key: str) -> Response:
        raw = request.query.get("partNumber", "")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARTS:
            raise e.InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                                    ArgumentName="partNumber", ArgumentValue=raw)
        upload_id = self._upload(request, bucket, key)
        if request.headers.get("x-amz-copy-source"):
            return await self.upload_part_copy(request, upload_id, int(raw))
        written = await receive(request, signed, self._store)
        if not await self._blocking(self._store.put_part, upload_id, int(raw), written.path, written.size,
                                    written.md5, self._clock.time()):
            raise e.NoSuchUpload(UploadId=upload_id)
        return Response(headers={"ETag": _etag(written.md5)})

    async def upload_part_copy(self, request: Request, upload_id: str, number: int) -> Response:
        """UploadPartCopy: a part made of (a range of) an existing object (`x-amz-copy-source-range`)."""
        info = self._copy_source(request)
        start, length = 0, info.size
        spec = request.headers.get("x-amz-copy-source-range")
        if spec is not None:
            wanted = parse_range(spec, info.size)
            if not isinstance(wanted, tuple) or wanted[1] - wanted[0] + 1 != range_length(spec):
                raise e.InvalidArgument("The x-amz-copy-source-range value must be of the form bytes=first-last "
                                        "where first and last are the zero-based offsets of the first and last "
                                        "bytes to copy", ArgumentName="x-amz-copy-source-range", ArgumentValue=spec)
            start, length = wanted[0], wanted[1] - wanted[0] + 1
        written = await asyncio.get_running_loop().run_in_executor(
            None, self._store.copy_range, info.file, start, length)
        if not await self._blocking(self._store.put_part, upload_id, number, written.path, written.size,
                                    written.md5, self._clock.time()):
            raise e.NoSuchUpload(UploadId=upload_id)
        body = xml.document("CopyPartResult", [E("LastModified", xml.timestamp(self._clock.time())),
                                               E("ETag", _etag(written.md5))])
        return Response(body, content_type=XML)

    def list_uploads(self, request: Request, bucket: str) -> Response:
        """ListMultipartUploads: uploads in progress, by key then initiation (prefix; up to max-uploads)."""
        self._bucket(bucket)
        q = request.query
        prefix = q.get("prefix", "")
        max_uploads = min(int(q["max-uploads"]), 1000) if q.get("max-uploads", "").isdigit() else 1000
        key_marker = q.get("key-marker", "")
        uploads = [u for u in self._store.uploads(bucket) if u.key.startswith(prefix) and u.key > key_marker]
        page, truncated = uploads[:max_uploads], len(uploads) > max_uploads
        children: list[xml.Node] = [E("Bucket", bucket), E("KeyMarker", key_marker), E("UploadIdMarker", ""),
                                    E("Prefix", prefix), E("MaxUploads", max_uploads), E("IsTruncated", truncated)]
        if truncated:
            children += [E("NextKeyMarker", page[-1].key), E("NextUploadIdMarker", page[-1].id)]
        children += [E("Upload", [E("Key", u.key), E("UploadId", u.id), E("Initiator", OWNER), E("Owner", OWNER),
                                  E("StorageClass", "STANDARD"), E("Initiated", xml.timestamp(u.initiated))])
                     for u in page]
        return Response(xml.document("ListMultipartUploadsResult", children), content_type=XML)

    def list_parts(self, request: Request, bucket: str, key: str) -> Response:
        upload_id = self._upload(request, bucket, key)
        q = request.query
        marker = int(q["part-number-marker"]) if q.get("part-number-marker", "").isdigit() else 0
        max_parts = min(int(q["max-parts"]), 1000) if q.get("max-parts", "").isdigit() else 1000
        parts = [p for p in self._store.parts(upload_id) if p.number > marker]
        page, truncated = parts[:max_parts], len(parts) > max_parts
        children: list[xml.Node] = [E("Bucket", bucket), E("Key", key), E("UploadId", upload_id),
                                    E("PartNumberMarker", marker)]
        if page:
            children.append(E("NextPartNumberMarker", page[-1].number))
        children += [E("MaxParts", max_parts), E("IsTruncated", truncated)]
        children += [E("Part", [E("PartNumber", p.number), E("LastModified", xml.timestamp(p.modified)),
                                E("ETag", _etag(p.etag)), E("Size", p.size)]) for p in page]
        children += [E("Initiator", OWNER), E("Owner", OWNER), E("StorageClass", "STANDARD")]
        return Response(xml.document("ListPartsResult", children), content_type=XML)

    async def abort_upload(self, request: Request, bucket: str, key: str) -> Response:
        upload_id = self._upload(request, bucket, key)
        await self._blocking(self._store.finish_upload, upload_id)
        return Response(status=204)

    async def complete_upload(self, request: Request, bucket: str, key: str) -> Response:
        upload_id = self._upload(request, bucket, key)
        upload = self._store.upload(upload_id)
        assert upload is not None
        root = xml.parse(request.body)
        asked: list[tuple[int, str]] = []
        for element in root.findall("Part"):
            number = (xml.text(element, "PartNumber") or "").strip()
            if not number.isdigit():
                raise e.MalformedXML()
            asked.append((int(number), (xml.text(element, "ETag") or "").strip().strip('"')))
        if not asked:
            raise e.MalformedXML("The XML you provided was not well-formed or did not validate against our "
                                 "published schema")
        numbers = [n for n, _ in asked]
        if numbers != sorted(set(numbers)):
            raise e.InvalidPartOrder(UploadId=upload_id)
        stored = {p.number: p for p in self._store.parts(upload_id)}
        chosen = []
        for i, (number, etag) in enumerate(asked):
            part = stored.get(number)
            if part is None or part.etag != etag:
                raise e.InvalidPart(UploadId=upload_id, PartNumber=str(number), ETag=etag)
            if i < len(asked) - 1 and part.size < MIN_PART_BYTES:
                raise e.EntityTooSmall(ProposedSize=str(part.size), MinSizeAllowed=str(MIN_PART_BYTES),
                                       PartNumber=str(number), ETag=etag)
            chosen.append(part)
        assembled = await asyncio.get_running_loop().run_in_executor(None, self._store.assemble, chosen)
        digest = hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in chosen)).hexdigest()
        etag = f"{digest}-{len(chosen)}"
        size = sum(p.size for p in chosen)
        stored_object = await self._blocking(self._store.put_object, bucket, key, assembled, size, etag,
                                             upload.content_type, upload.metadata, self._clock.time())
        if stored_object is None:
            raise e.NoSuchBucket(BucketName=bucket)
        await self._blocking(self._store.finish_upload, upload_id)
        info, sequence = stored_object
        await self._notify(request, "ObjectCreated:CompleteMultipartUpload", bucket, key, size, etag, sequence)
        location = f"/{bucket}/{quote(key, safe='/')}"
        body = xml.document("CompleteMultipartUploadResult", [E("Location", location), E("Bucket", bucket),
                                                              E("Key", key), E("ETag", _etag(etag))])
        return Response(body, content_type=XML)
