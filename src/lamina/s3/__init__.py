"""lamina's S3-compatible object store: buckets and objects on disk in the data directory, the S3
REST-XML API on lamina's port (path-style), and bucket notifications that invoke functions.

    store.py        metadata in SQLite, object bytes in opaque files (temp file + atomic rename)
    body.py         bodies in (streamed to disk: plain or aws-chunked) and out (file chunks)
    chunked.py      the aws-chunked decoder, with chunk signatures (pure)
    listing.py      ListObjectsV2 paging and delimiter grouping (pure)
    ranges.py       Range headers (pure)
    xml.py          XML rendering and parsing (pure)
    notify.py       notification configurations, matching and the S3 event record (pure)
    sigv2.py        S3's legacy presigned URLs (pure)
    credentials.py  per-function key pairs derived from lamina's secret
    base.py         what every operation shares: dependencies and lookups that raise S3 errors
    multipart.py    the multipart upload operations
    api.py          the front door: SigV4 (service s3), routing, bucket and object operations, XML errors
"""
