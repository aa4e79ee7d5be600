"""Where the uploaded export is fetched from: Supabase Storage, or a local bucket directory."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import httpx

from pipeline import log_redaction
from pipeline.errors import StageError, TransientError
from pipeline.settings import Settings
from pipeline.sizes import human_bytes

# httpx logs request lines at INFO, and a signed URL's token is in its query string.
log_redaction.install()

# Long enough to open the stream on a slow cold start, short enough to be useless if leaked.
SIGNED_URL_SECONDS = 120
COPY_BLOCK = 1024 * 1024

ProgressFn = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Fetched:
    path: Path
    size: int
    sha256: str


class ObjectSource(Protocol):
    def fetch(
        self,
        bucket: str,
        name: str,
        dest: Path,
        *,
        owner: UUID,
        max_bytes: int,
        progress: ProgressFn,
    ) -> Fetched: ...

    def delete(self, bucket: str, name: str, *, owner: UUID) -> bool: ...


def bad_object() -> StageError:
    return StageError("bad_object", "The uploaded file's name is not valid.")


def check_object_name(name: str, owner: UUID) -> None:
    """Refuse any name that is not ``{owner}/<plain segments>``: no empty, ``.`` or ``..``
    segment, no backslash. Raises StageError('bad_object').

    The database refuses such names too (policy and upload trigger); this is the check at
    the point of use, for jobs queued before that and for any bucket implementation that
    turns names into paths.
    """
    parts = name.split("/")
    if (
        "\\" in name
        or len(parts) < 2
        or parts[0].lower() != str(owner)
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise bad_object()


def too_large(size: int, limit: int) -> StageError:
    return StageError(
        "file_too_large",
        f"The export is {human_bytes(size)}, over the {human_bytes(limit)} limit for one import.",
    )


def _copy_stream(
    chunks: Iterable[bytes], dest: Path, *, max_bytes: int, progress: ProgressFn
) -> Fetched:
    """Write chunks to dest.part, hashing as we go; rename only when complete."""
    part = dest.with_suffix(dest.suffix + ".part")
    digest = hashlib.sha256()
    size = 0
    with open(part, "wb") as out:
        for block in chunks:
            size += len(block)
            if size > max_bytes:
                out.close()
                part.unlink(missing_ok=True)
                raise too_large(size, max_bytes)
            digest.update(block)
            out.write(block)
            progress(size)
        out.flush()
        os.fsync(out.fileno())
    part.replace(dest)
    return Fetched(dest, size, digest.hexdigest())


class LocalBucket:
    """Local mode: bucket `imports` is the directory root/imports."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def object_path(self, bucket: str, name: str, owner: UUID) -> Path:
        """root/bucket/name, which must lie in root/bucket/owner/ (after resolving links)."""
        check_object_name(name, owner)
        folder = (self.root / bucket / str(owner)).resolve()
        path = (self.root / bucket / name).resolve()
        if not path.is_relative_to(folder):
            raise bad_object()
        return path

    def fetch(
        self,
        bucket: str,
        name: str,
        dest: Path,
        *,
        owner: UUID,
        max_bytes: int,
        progress: ProgressFn,
    ) -> Fetched:
        src = self.object_path(bucket, name, owner)
        if not src.is_file():
            raise StageError("object_missing", "The uploaded file is no longer in storage.")
        size = src.stat().st_size
        if size > max_bytes:
            raise too_large(size, max_bytes)
        with open(src, "rb") as f:
            return _copy_stream(
                iter(lambda: f.read(COPY_BLOCK), b""), dest, max_bytes=max_bytes, progress=progress
            )

    def delete(self, bucket: str, name: str, *, owner: UUID) -> bool:
        """Remove the stored export; False when it was already gone."""
        path = self.object_path(bucket, name, owner)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def put(self, bucket: str, name: str, src: Path) -> Path:
        """Local 'upload': the bytes are stored before the storage.objects row exists.
        ``name`` is ``{user_id}/<file>``, like the app's uploads."""
        try:
            owner = UUID(name.split("/", 1)[0])
        except ValueError:
            raise bad_object() from None
        target = self.object_path(bucket, name, owner)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".uploading")
        shutil.copyfile(src, tmp)
        tmp.replace(target)
        return target


class SupabaseBucket:
    """Production: a signed URL made at the moment of download, streamed to disk.

    The client authenticates with the worker's own JWT (SUPABASE_WORKER_JWT, role
    import_storage_reader), never the service-role key; Storage RLS lets that role read
    bucket `imports` only, and it has no table or function privileges anywhere else.
    """

    def __init__(self, url: str, anon_key: str, worker_jwt: str) -> None:
        self.url = url
        self.anon_key = anon_key
        self.worker_jwt = worker_jwt

    def _bucket(self, bucket: str) -> Any:  # storage3's SyncBucketProxy, as the worker
        from supabase import ClientOptions, create_client

        client = create_client(
            self.url,
            self.anon_key,
            ClientOptions(
                headers={"Authorization": f"Bearer {self.worker_jwt}"},
                auto_refresh_token=False,
                persist_session=False,
            ),
        )
        return client.storage.from_(bucket)

    def signed_url(self, bucket: str, name: str) -> str:
        from storage3.exceptions import StorageApiError

        try:
            signed = self._bucket(bucket).create_signed_url(name, SIGNED_URL_SECONDS)
        except StorageApiError as exc:
            status = int(getattr(exc, "status", 0) or 0)
            if status >= 500:
                raise TransientError(f"Storage answered {status}") from exc
            # Storage answers "not found" for objects the worker's role may not read.
            raise StageError(
                "object_missing", "The uploaded file could not be found in storage."
            ) from exc
        url: str | None = signed.get("signedURL") or signed.get("signedUrl")
        if not url:
            raise StageError("object_missing", "The uploaded file could not be found in storage.")
        return url

    def fetch(
        self,
        bucket: str,
        name: str,
        dest: Path,
        *,
        owner: UUID,
        max_bytes: int,
        progress: ProgressFn,
    ) -> Fetched:
        check_object_name(name, owner)
        url = self.signed_url(bucket, name)
        timeout = httpx.Timeout(30.0, read=120.0)
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as resp:
            if resp.status_code >= 500:
                raise TransientError(f"Storage answered {resp.status_code}")
            if resp.status_code >= 400:
                raise StageError("object_missing", "The uploaded file is no longer in storage.")
            length = int(resp.headers.get("content-length") or 0)
            if length > max_bytes:
                raise too_large(length, max_bytes)
            return _copy_stream(
                resp.iter_bytes(COPY_BLOCK), dest, max_bytes=max_bytes, progress=progress
            )

    def delete(self, bucket: str, name: str, *, owner: UUID) -> bool:
        """Delete through the Storage API as the worker's role (RLS: bucket `imports` only).
        True when Storage reports the object deleted. Raises TransientError on a 5xx."""
        from storage3.exceptions import StorageApiError

        check_object_name(name, owner)
        try:
            removed = self._bucket(bucket).remove([name])
        except StorageApiError as exc:
            status = int(getattr(exc, "status", 0) or 0)
            if status >= 500:
                raise TransientError(f"Storage answered {status}") from exc
            return False
        return any(isinstance(o, dict) and o.get("name") == name for o in removed or [])


def object_source(settings: Settings) -> ObjectSource:
    if settings.supabase_url and settings.supabase_worker_jwt:
        return SupabaseBucket(
            settings.supabase_url, settings.supabase_anon_key or "", settings.supabase_worker_jwt
        )
    return LocalBucket(local_bucket_root(settings))


def local_bucket_root(settings: Settings) -> Path:
    return settings.local_bucket_dir or settings.data_dir / "storage"
