"""Settings come from the environment only: the `.env` that `make run` writes beside
manage.py (plain http, a public status API, text logs) must not reach the tests or any
other process that does not load it on purpose (honcho, for `make run`)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

READ_SETTINGS = (
    "import webhooks_project.settings as s; print(s.STATUS_API_PUBLIC, s.HTTPS, s.LOG_FORMAT, s.SECRET_KEY)"
)


def settings_seen(project: Path, **env: str) -> list[str]:
    """The settings a process importing `project`'s settings module gets."""
    clean = {
        k: v for k, v in os.environ.items() if k not in {"STATUS_API_PUBLIC", "DJANGO_HTTPS", "LOG_FORMAT"}
    }
    result = subprocess.run(
        [sys.executable, "-c", READ_SETTINGS],
        cwd=project,
        env={**clean, "PYTHONPATH": f"{project}{os.pathsep}{ROOT}", "DJANGO_SECRET_KEY": "from-env", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


def test_a_local_env_file_beside_manage_py_does_not_change_the_settings(tmp_path: Path) -> None:
    # A project directory like a developer's after `make run`: the settings package,
    # and the .env that `make run` wrote beside it (written here, never into the repo).
    shutil.copytree(ROOT / "webhooks_project", tmp_path / "webhooks_project")
    shutil.copy(ROOT / "manage.py", tmp_path / "manage.py")
    (tmp_path / ".env").write_text(
        "DJANGO_SECRET_KEY=from-dot-env\nDJANGO_HTTPS=0\nSTATUS_API_PUBLIC=1\nLOG_FORMAT=text\n"
    )

    assert settings_seen(tmp_path) == ["False", "True", "json", "from-env"]


def test_the_real_environment_still_sets_them(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "webhooks_project", tmp_path / "webhooks_project")

    seen = settings_seen(tmp_path, STATUS_API_PUBLIC="1", DJANGO_HTTPS="0", LOG_FORMAT="text")

    assert seen == ["True", "False", "text", "from-env"]
