"""lamina's S3-compatible object store: buckets and objects on disk in the data directory, the S3
REST-XML API on lamina's port (path-style), and bucket notifications that invoke functions.

    store.py     metadata in SQLite, object bytes in opaque files (temp file + atomic rename)
    body.py      request bodies streamed to disk: plain, or aws-chunked with chunk signatures
    chunked.py   the aws-chunked decoder (pure)
    listing.py   ListObjectsV2 paging and delimiter grouping (pure)
    xml.py       XML rendering and parsing (pure)
    notify.py    notification configurations, matching and the S3 event record (pure)
    api.py       the front door: routing, SigV4 (service s3), one XML error mapping
"""
