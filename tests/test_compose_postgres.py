"""The compose file's postgres profile: opt-in, private to the machine, and the bots wait for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
    return data


def test_postgres_runs_only_with_its_profile_and_the_bots_wait_for_it_when_it_does() -> None:
    services = compose()["services"]
    optional = {"postgres", "telegram-2", "caddy"}  # PostgreSQL, a second Telegram replica, the entry
    assert all(services[name]["profiles"] == ["postgres"] for name in optional)
    assert all("profiles" not in s for name, s in services.items() if name not in optional)  # the default set
    for bot in ("telegram", "signal"):
        dep = services[bot]["depends_on"]["postgres"]
        assert dep == {"condition": "service_healthy", "required": False}
    pg = services["postgres"]
    assert pg["healthcheck"]["test"][1] == "pg_isready"
    assert all(p.startswith("127.0.0.1:") for p in pg["ports"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])  # data outlives the container
    env = (ROOT / ".env.example").read_text()
    assert "postgresql://ferry:<POSTGRES_PASSWORD>@postgres:5432/ferry" in env


def test_the_postgres_profile_runs_two_telegram_replicas_behind_caddy() -> None:
    services = compose()["services"]
    assert services["telegram-2"]["command"] == services["telegram"]["command"] == ["telegram"]
    assert services["telegram-2"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    caddy = services["caddy"]
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert set(caddy["depends_on"]) == {"telegram", "telegram-2"}
    caddyfile = (ROOT / "Caddyfile").read_text()
    assert "reverse_proxy telegram:8443 telegram-2:8443" in caddyfile
    assert "lb_policy round_robin" in caddyfile
    assert "FERRY_DOMAIN=" in (ROOT / ".env.example").read_text()
