"""``cowrite_dev.services`` finds binaries and never installs them."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from cowrite_dev import http_services, services


def _no_subprocess(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"ran a process: {args}")


@pytest.mark.parametrize(
    ("finder", "create"),
    [
        ("postgres_bindir", services.PostgresServer.create),
        ("redis_binary", services.RedisServer.create),
        ("nginx_binary", lambda: http_services.NginxServer.create(["127.0.0.1:1"])),
    ],
)
def test_a_missing_binary_names_the_install_script(
    monkeypatch: pytest.MonkeyPatch, finder: str, create: Any
) -> None:
    module = http_services if finder == "nginx_binary" else services
    monkeypatch.setattr(module, finder, lambda: None)
    monkeypatch.setattr(subprocess, "run", _no_subprocess)
    monkeypatch.setattr(subprocess, "Popen", _no_subprocess)
    with pytest.raises(services.ServiceError, match=r"scripts/ensure-services"):
        create()
