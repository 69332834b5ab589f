"""`aws s3` (the AWS CLI's high-level commands: multipart transfers with parallel parts, listing,
sync, recursive delete) against lamina's S3."""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from pathlib import Path

from tests.integration.conftest import ACCESS_KEY, SECRET_KEY
from tests.integration.test_aws_cli import aws_cli


def aws(server, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")
    return subprocess.run([*aws_cli(), "--endpoint-url", server.url, *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_aws_s3_cp_ls_sync_rm(server, tmp_path):
    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    assert aws(server, "s3", "mb", f"s3://{bucket}", cwd=tmp_path).returncode == 0
    big = tmp_path / "up" / "big.bin"
    big.parent.mkdir()
    big.write_bytes(os.urandom(20 * 1024 * 1024))  # above the CLI's 8 MiB threshold: a multipart upload
    (tmp_path / "up" / "small file.txt").write_text("small")
    out = aws(server, "s3", "cp", str(big), f"s3://{bucket}/data/big.bin", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = aws(server, "s3", "sync", str(tmp_path / "up"), f"s3://{bucket}/synced", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    listing = aws(server, "s3", "ls", "--recursive", f"s3://{bucket}", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert sorted(line.split(maxsplit=3)[3] for line in listing.stdout.splitlines()) == \
        ["data/big.bin", "synced/big.bin", "synced/small file.txt"]
    out = aws(server, "s3", "cp", f"s3://{bucket}/data/big.bin", str(tmp_path / "down.bin"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert hashlib.md5((tmp_path / "down.bin").read_bytes()).digest() == hashlib.md5(big.read_bytes()).digest()
    out = aws(server, "s3", "cp", f"s3://{bucket}/data/big.bin", f"s3://{bucket}/copied/big.bin", cwd=tmp_path)
    assert out.returncode == 0, out.stderr  # above 8 MiB: CreateMultipartUpload + UploadPartCopy
    out = aws(server, "s3", "cp", f"s3://{bucket}/copied/big.bin", str(tmp_path / "copy.bin"), cwd=tmp_path)
    assert (tmp_path / "copy.bin").read_bytes() == big.read_bytes()
    assert aws(server, "s3", "rb", "--force", f"s3://{bucket}", cwd=tmp_path).returncode == 0
    assert bucket not in aws(server, "s3", "ls", cwd=tmp_path).stdout
