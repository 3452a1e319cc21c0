"""What the Deploy workflow ships: .github/scripts/changed-apps.sh run on a real git history.

Only GitHub's deployments API is faked: a `gh` stub on PATH answers with the deployments (commit
and latest status) the test gives it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from local.paths import REPO_ROOT

SCRIPT = REPO_ROOT / ".github/scripts/changed-apps.sh"
NO_MODELS = {"models": "false"}


class History:
    """A git repository with the monorepo's top-level shape, one commit per change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.git("init", "--quiet")
        self.commit({
            "apps/inference-api/template.yaml": "v1",
            "apps/frontend/template.yaml": "v1",
            "apps/frontend/site/index.html": "v1",
            "layers/common/pressroom_common/__init__.py": "v1",
            "models/headline-base.yaml": "v1",
            "README.md": "v1",
        })  # fmt: skip

    def git(self, *arguments: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *arguments],
            cwd=self.root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def commit(self, files: dict[str, str]) -> str:
        for name, text in files.items():
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            (self.root / name).write_text(text)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--message", "change")
        return self.git("rev-parse", "HEAD")

    def plan(
        self, deployments: list[tuple[str, str]], *, everything: bool = False
    ) -> dict[str, str]:
        """Run the script; `deployments` are (commit, latest status), newest first."""
        bin_dir = self.root.parent / "bin"
        bin_dir.mkdir(exist_ok=True)
        listing = "".join(f"{number} {sha}\\n" for number, (sha, _) in enumerate(deployments))
        statuses = "".join(
            f'  */deployments/{number}/statuses*) echo "{state}" ;;\n'
            for number, (_, state) in enumerate(deployments)
        )
        gh = bin_dir / "gh"
        gh.write_text(
            "#!/usr/bin/env bash\n"
            'case "$2" in\n'
            f"  *deployments\\?environment=dev*) printf '{listing}' ;;\n"
            f"{statuses}"
            "esac\n"
        )
        gh.chmod(0o755)
        output, summary = self.root.parent / "output", self.root.parent / "summary"
        environment = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_REPOSITORY": "owner/repo",
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "ENVIRONMENT": "dev",
            "DEPLOY_EVERYTHING": "true" if everything else "false",
        }
        output.write_text("")
        subprocess.run(["bash", str(SCRIPT)], cwd=self.root, env=environment, check=True)
        return dict(line.split("=", 1) for line in output.read_text().splitlines())


def test_a_site_only_change_publishes_the_site_and_leaves_the_stack(tmp_path: Path) -> None:
    history = History(tmp_path / "repo")
    deployed = history.git("rev-parse", "HEAD")
    history.commit({"apps/frontend/site/index.html": "v2"})

    assert history.plan([(deployed, "success")]) == {"stack": "false", "site": "true", **NO_MODELS}


def test_an_app_or_the_shared_layer_changing_deploys_the_stack(tmp_path: Path) -> None:
    history = History(tmp_path / "repo")
    deployed = history.git("rev-parse", "HEAD")
    history.commit({"layers/common/pressroom_common/__init__.py": "v2"})

    assert history.plan([(deployed, "success")]) == {"stack": "true", "site": "false", **NO_MODELS}


def test_nothing_relevant_changed_ships_nothing(tmp_path: Path) -> None:
    history = History(tmp_path / "repo")
    deployed = history.git("rev-parse", "HEAD")
    history.commit({"README.md": "v2"})

    assert history.plan([(deployed, "success")]) == {"stack": "false", "site": "false", **NO_MODELS}


def test_changes_of_a_failed_deploy_ride_with_the_next_one(tmp_path: Path) -> None:
    history = History(tmp_path / "repo")
    deployed = history.git("rev-parse", "HEAD")
    failed = history.commit({"apps/inference-api/template.yaml": "v2"})
    history.commit({"README.md": "v2"})

    plan = history.plan([(failed, "failure"), (deployed, "success")])

    assert plan == {"stack": "true", "site": "false", **NO_MODELS}


def test_without_a_successful_deployment_or_when_asked_everything_ships(tmp_path: Path) -> None:
    history = History(tmp_path / "repo")
    deployed = history.git("rev-parse", "HEAD")

    assert history.plan([]) == {"stack": "true", "site": "true", "models": "true"}
    assert history.plan([(deployed, "success")], everything=True) == {
        "stack": "true",
        "site": "true",
        "models": "true",
    }


def test_a_model_or_training_change_publishes_models_before_the_deploy(tmp_path: Path) -> None:
    history = History(tmp_path / "repo")
    deployed = history.git("rev-parse", "HEAD")
    history.commit({"models/headline-base.yaml": "v2"})
    assert history.plan([(deployed, "success")]) == {
        "stack": "false",
        "site": "false",
        "models": "true",
    }
    history.commit({"training/train.py": "v2"})
    assert history.plan([(deployed, "success")])["models"] == "true"
