"""Static checks of the compose stack: docker-compose.yml, .env.example, Dockerfile.

Nothing here needs a Docker engine. The file is read with PyYAML and its ``${VAR}``
references are resolved the way compose does, with the values from .env.example. When
a compose client is installed, the last test also has it validate the file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
POSTGRES_INIT = ROOT / "docker" / "postgres-init.sql"

CORE_SERVICES = ("postgres", "prefect-server", "mlflow", "casework")
LONG_RUNNING = (*CORE_SERVICES, "worker")
NAMED_VOLUMES = ("postgres-data", "mlflow-artifacts", "casework-home")
# Stand-in for the one secret, which .env.example leaves empty on purpose.
_TEST_PASSWORD = "compose-test-only"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; "$${" escapes.
_REFERENCE = re.compile(
    r"(?<!\$)\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)
_BARE_REFERENCE = re.compile(r"(?<!\$)\$(?![{$])[A-Za-z_]")
_ENV_LINE = re.compile(r"^#?\s*(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
_URL_CREDENTIALS = re.compile(r"://(?P<user>[^:/@\s]+):(?P<password>[^@\s]+)@")
_PASSWORD_SETTING = re.compile(
    r"(?i)(?<![{\w])\w*password\w*[\"']?\s*[:=]\s*[\"']?(?P<value>\S+)"
)


def _env_example() -> dict[str, str]:
    """Variables of .env.example, commented-out defaults included."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := _ENV_LINE.match(line.strip()):
            found[match["name"]] = match["value"]
    return found


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Resolve ``${...}`` references in ``text`` the way compose does."""

    def resolve(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        missing = value is None or (value == "" and op is not None and op[0] == ":")
        if not missing:
            return value
        if op is not None and op.endswith("?"):
            raise ValueError(f"required variable {name!r} is missing: {arg}")
        return arg or ""

    return _REFERENCE.sub(resolve, text).replace("$$", "$")


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text) -> dict:
    """The compose file as compose sees it with .env.example and a test password."""
    env = _env_example() | {"POSTGRES_PASSWORD": _TEST_PASSWORD}
    return yaml.safe_load(_interpolate(compose_text, env))


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def _command(service: dict) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def _option(command: list[str], flag: str) -> str:
    assert flag in command, f"{flag} missing from {command}"
    return command[command.index(flag) + 1]


class TestServices:
    def test_the_four_services_and_the_optional_worker_are_defined(self, services):
        assert set(CORE_SERVICES) <= set(services)
        assert services["worker"]["profiles"] == ["worker"]
        assert all("profiles" not in services[name] for name in CORE_SERVICES)

    @pytest.mark.parametrize("name", LONG_RUNNING)
    def test_every_long_running_service_has_a_healthcheck(self, services, name):
        healthcheck = services[name].get("healthcheck", {})
        assert healthcheck.get("test"), f"{name} has no healthcheck test"
        assert not healthcheck.get("disable", False)
        assert healthcheck["test"][0] in ("CMD", "CMD-SHELL")

    @pytest.mark.parametrize("name", LONG_RUNNING)
    def test_depends_on_waits_for_healthy_services(self, services, name):
        depends_on = services[name].get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: use the long depends_on syntax"
        for target, condition in depends_on.items():
            assert condition == {"condition": "service_healthy"}, (name, target)
            assert "healthcheck" in services[target], (name, target)

    def test_servers_start_after_their_dependencies(self, services):
        assert set(services["prefect-server"]["depends_on"]) == {"postgres"}
        assert set(services["mlflow"]["depends_on"]) == {"postgres"}
        for name in ("casework", "worker"):
            assert set(services[name]["depends_on"]) == {"prefect-server", "mlflow"}

    def test_images_are_the_expected_ones(self, services):
        assert services["postgres"]["image"] == "postgres:16"
        assert services["prefect-server"]["image"] == "prefecthq/prefect:3-python3.11"
        for name in ("mlflow", "casework", "worker"):
            assert services[name]["build"]["context"] == "."

    def test_published_ports_bind_to_loopback_by_default(self, services):
        ports = [p for s in services.values() for p in s.get("ports", [])]
        assert ports == ["127.0.0.1:4200:4200", "127.0.0.1:5000:5000"]


class TestVolumes:
    def test_named_volumes_are_declared(self, compose):
        assert set(compose["volumes"]) == set(NAMED_VOLUMES)

    def test_every_named_volume_is_used_and_every_used_one_declared(self, services):
        used = set()
        for service in services.values():
            for mount in service.get("volumes", []):
                source = mount.split(":", 1)[0]
                if not source.startswith((".", "/")):
                    used.add(source)
        assert used == set(NAMED_VOLUMES)

    def test_postgres_init_script_is_mounted_and_creates_both_databases(self, services):
        mounts = services["postgres"]["volumes"]
        assert any(m.startswith("./docker/postgres-init.sql:") for m in mounts)
        statements = POSTGRES_INIT.read_text().lower()
        assert "create database prefect;" in statements
        assert "create database mlflow;" in statements


class TestWiring:
    @pytest.mark.parametrize("name", ["casework", "worker"])
    def test_clients_reach_the_servers_by_service_name(self, services, name):
        env = services[name]["environment"]
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert env["CASEWORK_HOME"] == "/data"

    def test_casework_runs_deploy(self, services):
        assert _command(services["casework"]) == ["casework", "deploy"]

    def test_worker_polls_the_casework_pool(self, services):
        command = _command(services["worker"])
        assert command[:3] == ["prefect", "worker", "start"]
        assert _option(command, "--pool") == "casework"

    def test_prefect_server_uses_its_postgres_database(self, services):
        service = services["prefect-server"]
        url = urlsplit(service["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"])
        assert (url.scheme, url.hostname, url.path) == (
            "postgresql+asyncpg",
            "postgres",
            "/prefect",
        )
        assert service["environment"]["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
        assert _option(_command(service), "--host") == "0.0.0.0"

    def test_mlflow_server_uses_postgres_and_serves_artifacts(self, services):
        service = services["mlflow"]
        command = _command(service)
        url = urlsplit(_option(command, "--backend-store-uri"))
        assert (url.scheme, url.hostname, url.path) == (
            "postgresql+psycopg",
            "postgres",
            "/mlflow",
        )
        assert "--serve-artifacts" in command
        destination = _option(command, "--artifacts-destination")
        assert f"mlflow-artifacts:{destination}" in service["volumes"]

    def test_mlflow_accepts_the_host_headers_of_its_clients(self, services):
        allowed = _option(_command(services["mlflow"]), "--allowed-hosts").split(",")
        # Host headers carry the port: the containers send "mlflow:5000".
        assert "mlflow:5000" in allowed
        assert {"localhost", "localhost:*"} <= set(allowed)


class TestSecrets:
    def test_credentials_in_urls_come_from_the_password_variable(self, compose_text):
        env = _env_example() | {"POSTGRES_PASSWORD": _TEST_PASSWORD}
        matches = list(_URL_CREDENTIALS.finditer(_interpolate(compose_text, env)))
        assert len(matches) == 2, "expected the Prefect and MLflow database URLs"
        assert {m["password"] for m in matches} == {_TEST_PASSWORD}

    def test_password_references_are_required_and_have_no_default(self, compose_text):
        ops = {
            m["op"]
            for m in _REFERENCE.finditer(compose_text)
            if m["name"] == "POSTGRES_PASSWORD"
        }
        assert ops == {":?"}

    def test_no_password_is_written_as_a_literal(self, compose_text):
        for match in _PASSWORD_SETTING.finditer(compose_text):
            assert match["value"].startswith("$"), match.group(0)

    def test_env_example_leaves_the_password_empty(self):
        assert _env_example()["POSTGRES_PASSWORD"] == ""

    def test_compose_refuses_to_start_without_a_password(self, compose_text):
        with pytest.raises(ValueError, match="POSTGRES_PASSWORD"):
            _interpolate(compose_text, _env_example())


class TestEnvExample:
    def test_every_variable_is_documented(self, compose_text):
        used = {m["name"] for m in _REFERENCE.finditer(compose_text)}
        assert used <= set(_env_example()), used - set(_env_example())

    def test_every_documented_variable_is_used(self, compose_text):
        used = {m["name"] for m in _REFERENCE.finditer(compose_text)}
        assert set(_env_example()) <= used, set(_env_example()) - used

    def test_documented_defaults_match_the_compose_defaults(self, compose_text):
        documented = _env_example()
        for match in _REFERENCE.finditer(compose_text):
            if match["op"] == ":-":
                assert documented[match["name"]] == match["arg"], match.group(0)

    def test_references_are_braced(self, compose_text):
        assert not _BARE_REFERENCE.search(compose_text)


class TestDockerfile:
    def test_installs_cpu_torch_before_the_project(self):
        lines = DOCKERFILE.read_text().splitlines()
        torch = next(
            i for i, line in enumerate(lines) if "download.pytorch.org" in line
        )
        project = next(
            i for i, line in enumerate(lines) if line.startswith("RUN pip install .")
        )
        assert "--index-url https://download.pytorch.org/whl/cpu" in lines[torch]
        assert torch < project

    def test_runs_as_a_non_root_user_with_casework_home_in_data(self):
        text = DOCKERFILE.read_text()
        assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
        assert re.search(r"^USER (?!root)\w+", text, re.MULTILINE)
        assert "CASEWORK_HOME=/data" in text

    def test_copies_what_pyproject_packages(self):
        text = DOCKERFILE.read_text()
        pyproject = (ROOT / "pyproject.toml").read_text()
        readme = re.search(r'^readme = "([^"]+)"', pyproject, re.MULTILINE)
        assert readme and readme[1] in text
        for folder in ("casework", "flows", "tasks", "usecases"):
            assert (ROOT / folder).is_dir()
            assert f"COPY {folder} ./{folder}" in text

    def test_dockerignore_keeps_local_state_and_secrets_out(self):
        ignored = set(DOCKERIGNORE.read_text().splitlines())
        assert {".venv", ".casework", ".git", ".env", ".pytest_cache"} <= ignored


def _compose_command() -> list[str] | None:
    """The compose client here: ``docker compose`` (plugin) or ``docker-compose``."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for command in candidates:
        probe = subprocess.run(
            [*command, "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return command
    return None


def test_compose_client_accepts_the_file(tmp_path):
    """Check the file with the real compose client; needs no Docker engine."""
    command = _compose_command()
    if command is None:
        pytest.skip(
            "no compose client: `docker compose version` failed (the docker CLI has no"
            " compose plugin) and no `docker-compose` is on PATH"
        )
    env_file = tmp_path / "compose.env"
    values = _env_example() | {"POSTGRES_PASSWORD": _TEST_PASSWORD}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))

    completed = subprocess.run(
        [
            *command,
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(env_file),
            "config",
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
