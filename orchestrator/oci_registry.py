"""A small client for the OCI distribution API: manifests and blobs by digest, streamed.

liveorch needs six calls of the spec (ping, manifest get/put, blob head/get, monolithic blob
upload) and token or basic authentication. It does not use oras-py for them: oras-py
retries every failed request five times, sleeping up to 81 s between tries (about two
minutes in all), so an unreachable registry would stall each stage of a build, where liveorch
must say one line and go on without the registry. Everything streams: a blob goes up from
an open file and comes down in chunks, never whole in memory.

Registries on 127.0.0.1, ::1 or localhost are spoken to over plain HTTP (as Docker allows
them without TLS); every other registry over HTTPS.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import requests

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
TIMEOUT = (5, 60)  # connect, read (seconds): a registry that stops answering is given up on
CHUNK = 1 << 20


class RegistryError(Exception):
    """A registry that cannot be reached, refuses us, or answers what the spec does not say."""


@dataclass(frozen=True)
class RegistryRef:
    """host[:port]/repository, as written on the command line."""

    host: str
    repository: str

    @classmethod
    def parse(cls, text: str) -> RegistryRef:
        text = text.removeprefix("oci://").removeprefix("https://").removeprefix("http://").strip("/")
        host, _, repository = text.partition("/")
        if not host or not repository or not re.fullmatch(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*", repository):
            raise ValueError(f"{text!r}: give REGISTRY/REPOSITORY, e.g. ghcr.io/OWNER/liveorch-cache or "
                             "127.0.0.1:5000/liveorch-cache (lower-case repository)")
        return cls(host, repository)

    @property
    def base(self) -> str:
        local = self.host.split(":")[0] in LOCAL_HOSTS or self.host.startswith("[::1]")
        return f"{'http' if local else 'https'}://{self.host}"

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}"


def _docker_config_auth(host: str) -> tuple[str, str] | None:
    config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        auths = json.loads(config.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    for name in (host, f"https://{host}", f"http://{host}"):
        encoded = auths.get(name, {}).get("auth")
        if encoded:
            user, _, password = base64.b64decode(encoded).decode(errors="replace").partition(":")
            return user, password
    return None


def credentials(host: str) -> tuple[str, str] | None:
    """LIVEORCH_REGISTRY_USER/_TOKEN, then GITHUB_TOKEN for ghcr.io, then the Docker config."""
    token = os.environ.get("LIVEORCH_REGISTRY_TOKEN")
    if token:
        return os.environ.get("LIVEORCH_REGISTRY_USER", "liveorch"), token
    if host == "ghcr.io" and os.environ.get("GITHUB_TOKEN"):
        return os.environ.get("GITHUB_ACTOR", "x-access-token"), os.environ["GITHUB_TOKEN"]
    return _docker_config_auth(host)


def _challenge(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


class OciClient:
    """One repository of one registry."""

    def __init__(self, ref: RegistryRef) -> None:
        self.ref = ref
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "liveorch"
        self.login = credentials(ref.host)
        self.token: str | None = None

    def _url(self, path: str) -> str:
        return f"{self.ref.base}/v2/{self.ref.repository}/{path}"

    def _authorize(self, response: requests.Response) -> bool:
        """Answer a 401: a bearer token from the realm it names, or basic credentials."""
        header = response.headers.get("WWW-Authenticate", "")
        if header.lower().startswith("bearer"):
            params = _challenge(header)
            query = {k: v for k, v in params.items() if k in ("service", "scope")}
            query.setdefault("scope", f"repository:{self.ref.repository}:pull,push")
            answer = self.session.get(params.get("realm", ""), params=query, auth=self.login, timeout=TIMEOUT)
            if answer.status_code != 200:
                return False
            body = answer.json()
            self.token = body.get("token") or body.get("access_token")
            return bool(self.token)
        if header.lower().startswith("basic") and self.login and self.session.auth is None:
            self.session.auth = self.login
            return True
        return False

    def request(self, method: str, url: str, expect: tuple[int, ...], **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        for attempt in range(2):
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            try:
                response = self.session.request(method, url, headers=headers, timeout=TIMEOUT, **kwargs)
            except requests.exceptions.RequestException as error:
                raise RegistryError(f"{self.ref.host} is unreachable ({type(error).__name__})") from None
            if response.status_code == 401 and attempt == 0 and self._authorize(response):
                continue
            if response.status_code in expect:
                return response
            if response.status_code in (401, 403):
                raise RegistryError(f"{self.ref} refused us (HTTP {response.status_code}): check the credentials")
            raise RegistryError(f"{self.ref} answered HTTP {response.status_code} to {method} {url.split('/v2/')[-1]}")
        raise RegistryError(f"{self.ref} refused us (HTTP 401): check the credentials")

    def ping(self) -> None:
        self.request("GET", f"{self.ref.base}/v2/", (200, 401))

    def manifest(self, tag: str) -> dict[str, Any] | None:
        response = self.request("GET", self._url(f"manifests/{tag}"), (200, 404), headers={"Accept": MANIFEST_TYPE})
        return None if response.status_code == 404 else response.json()

    def has_manifest(self, tag: str) -> bool:
        return self.request("HEAD", self._url(f"manifests/{tag}"), (200, 404),
                            headers={"Accept": MANIFEST_TYPE}).status_code == 200

    def put_manifest(self, tag: str, manifest: dict[str, Any]) -> None:
        body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        self.request("PUT", self._url(f"manifests/{tag}"), (201,), data=body,
                     headers={"Content-Type": MANIFEST_TYPE})

    def has_blob(self, digest: str) -> bool:
        return self.request("HEAD", self._url(f"blobs/{digest}"), (200, 404)).status_code == 200

    def blob(self, digest: str) -> Iterator[bytes]:
        """The blob's bytes in chunks (the caller checks the digest)."""
        response = self.request("GET", self._url(f"blobs/{digest}"), (200,), stream=True)
        try:
            yield from response.iter_content(CHUNK)
        except requests.exceptions.RequestException:
            raise RegistryError(f"{self.ref}: the download of {digest[:19]} broke off") from None
        finally:
            response.close()

    def put_blob(self, digest: str, source: IO[bytes], size: int) -> None:
        """A monolithic upload (POST, then PUT with the digest), streamed from `source`."""
        if self.has_blob(digest):
            return
        started = self.request("POST", self._url("blobs/uploads/"), (202,))
        location = started.headers.get("Location", "")
        if location.startswith("/"):
            location = self.ref.base + location
        separator = "&" if "?" in location else "?"
        # requests streams a file of known length with Content-Length; an empty or small one
        # goes as bytes (for an empty file it would switch to chunked encoding, which a
        # registry then waits on until the read timeout).
        body: IO[bytes] | bytes = source.read() if size < CHUNK else source
        self.request("PUT", f"{location}{separator}digest={digest}", (201,), data=body,
                     headers={"Content-Type": "application/octet-stream"})
