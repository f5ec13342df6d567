"""The ad-hoc deployment's run form in Prefect's UI, in headless Chromium: the strategy and engine
choices render with their defaults, and a run submitted from the form completes.

Chromium is driven over the DevTools protocol (``websockets``, a Prefect dependency); no browser
automation package is needed. Without Chromium the test skips, unless ``CI`` is set: then it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import Chromium
from ledger_helpers import open_ledger
from service_helpers import scaled, stop, wait_until, write_questions

from ttscale.engines.config import TEST_ENGINES_ENV
from ttscale.schemas import LEDGER_FROM_ENV

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = os.environ.get("TTSCALE_SCREENSHOTS")
ITEMS = 2
DEFAULT_UNITS_PER_ITEM = 7
"""The form's default strategies: majority N ∈ {1, 2, 4, 8}, budget forcing B ∈ {64, 128, 256}."""
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
SERVE_ADHOC = (
    "import prefect; from flows.batch import ttscale_batch; "
    "prefect.serve(ttscale_batch.to_deployment(name='adhoc'))"
)


@pytest.fixture(scope="module", autouse=True)
def chromium_binary() -> str:
    """Chromium's path; checked before any server starts."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "no chromium binary (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the browser test")
        pytest.skip(reason)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# The form's fields by their label ("Input", "Engine", ...; Prefect appends " (Optional)").
FIELD = """(label) => {
  const named = p => p.querySelector(':scope > .p-label__header .schema-form-property__label')
    ?.textContent.trim().replace(/ \\(Optional\\)$/, '') === label;
  return [...document.querySelectorAll('.schema-form-property')].find(named) ?? null;
}"""


class RunForm:
    """The custom-run page of a deployment."""

    def __init__(self, browser: Chromium) -> None:
        self.browser = browser

    def _field(self, label: str, body: str) -> Any:
        found = f"({FIELD})({json.dumps(label)})"
        missing = f"throw new Error('no form field ' + {json.dumps(label)});"
        return self.browser.eval(f"(field => {{ if (!field) {missing} {body} }})({found})")

    def tabs(self, label: str) -> dict[str, bool]:
        """The field's variant tabs (its own, not a sub-form's), each with whether it is chosen."""
        return dict(
            self._field(
                label,
                "return [...field.querySelector('.p-button-group').querySelectorAll('button')]"
                ".map(b => [b.textContent.trim(), b.getAttribute('aria-selected') === 'true']);",
            )
        )

    def values(self, label: str) -> list[str]:
        """The values of every text, number and list input under the field, in page order."""
        inputs = "[...field.querySelectorAll('input, textarea')]"
        return list(self._field(label, f"return {inputs}.map(e => e.value);"))

    def choose(self, label: str, tab: str) -> None:
        self._field(
            label,
            "const tab = [...field.querySelector('.p-button-group').querySelectorAll('button')]"
            f".find(b => b.textContent.trim() === {json.dumps(tab)}); tab.click();",
        )

    def type(self, label: str, text: str) -> None:
        """Replace the field's text as a user would: focus, select all, type."""
        self._field(
            label, "const e = field.querySelector('textarea, input'); e.focus(); e.select();"
        )
        self.browser.send("Input.insertText", text=text)

    def submit(self) -> str:
        """Press Submit; returns the name of the flow run the UI reports it created."""
        self.browser.eval(
            "[...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Submit')"
            ".click()"
        )
        toast = "document.querySelector('.toast-flow-run-create__message--emphasized')"
        return str(self.browser.wait_for(f"{toast}?.textContent.trim()", 30))


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``prefect server start`` with its UI (the session's ``prefect_env`` server has none)."""
    home = tmp_path_factory.mktemp("prefect-ui-home")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = os.environ | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PREFECT_UI_API_URL": api,
        "PREFECT_SERVER_UI_ENABLED": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "1",
        # The served deployment's schema lists the scripted engine, so the form can pick it.
        TEST_ENGINES_ENV: "1",
    }
    log = (home / "server.log").open("wb")
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_until(lambda: _healthy(f"{api}/health"), scaled(120), "prefect server")
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}/"), scaled(60), "prefect UI")
        yield env | {"UI_URL": f"http://127.0.0.1:{port}"}
    finally:
        stop(server)
        log.close()


@pytest.fixture
def adhoc(ui_server: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``ttscale-batch/adhoc`` served from a subprocess; yields the deployment as the API has it."""
    api = ui_server["PREFECT_API_URL"]
    log = (tmp_path / "serve.log").open("wb")
    runner = subprocess.Popen(
        [sys.executable, "-c", SERVE_ADHOC],
        cwd=REPO,
        env=ui_server,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def registered() -> bool:
        assert runner.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        return httpx.get(f"{api}/deployments/name/ttscale-batch/adhoc").status_code == 200

    try:
        wait_until(registered, scaled(60), "served deployment")
        yield httpx.get(f"{api}/deployments/name/ttscale-batch/adhoc").json()
    finally:
        stop(runner)
        log.close()


@pytest.fixture
def browser(chromium_binary: str, tmp_path: Path) -> Iterator[Chromium]:
    chromium = Chromium(chromium_binary, tmp_path / "chromium-profile")
    try:
        yield chromium
    finally:
        chromium.close()


def test_run_form_shows_choices_with_defaults_and_submits_a_run(
    ui_server: dict[str, str], adhoc: dict[str, Any], browser: Chromium, tmp_path: Path
) -> None:
    api = ui_server["PREFECT_API_URL"]
    page = f"{ui_server['UI_URL']}/deployments/deployment/{adhoc['id']}/run"
    browser.send("Page.navigate", url=page)
    browser.wait_for("document.querySelector('.schema-form-property') !== null", 60)
    form = RunForm(browser)
    try:
        # Each strategy is a choice between its settings and Off; the default batch is on.
        assert form.tabs("Majority vote") == {"Majority vote": True, "Off": False}
        assert form.tabs("Budget forcing") == {"Budget forcing": True, "Off": False}
        assert form.tabs("Best-of-N") == {"Best-of-N": False, "Off": True}
        assert form.values("Sample counts N") == ["1", "2", "4", "8"]
        assert form.values("Thinking budgets B (tokens)") == ["64", "128", "256"]
        assert form.tabs("Engine") == {
            "vLLM (in-process)": True,
            "OpenAI-compatible server": False,
            "Scripted (tests only)": False,
        }
        assert form.values("Model")[0] == "embedded:smollm2-135m"
        assert form.values("KV cache (GiB)") == ["4"]
        # Where the run's ledger is, resolved where it runs: the service's, else the embedded one.
        assert form.values("Ledger") == [LEDGER_FROM_ENV]
        # Turning a strategy on shows its fields filled, a scorer choice included.
        form.choose("Best-of-N", "Best-of-N")
        browser.wait_for(f"({FIELD})('Scorer') !== null", 10)
        assert form.tabs("Scorer") == {
            "Mean token probability": True,
            "Reward model server": False,
            "Self-certainty": False,
        }  # not "Stored scores (replay)": only replay can use it
        if SCREENSHOTS:  # TTSCALE_SCREENSHOTS=docs refreshes the README's pictures
            browser.screenshot(Path(SCREENSHOTS) / "run-form-best-of-n.png")
        form.choose("Best-of-N", "Off")

        questions = write_questions(tmp_path / "q.jsonl", ITEMS)
        out = tmp_path / "out"
        form.type("Input", str(questions))
        form.type("Output", f"file://{out}")
        form.type("Ledger", str(out / "ledger.duckdb"))
        form.choose("Engine", "Scripted (tests only)")
        browser.wait_for(f"({FIELD})('Accuracy') !== null", 10)
        name = form.submit()
    except Exception:
        browser.screenshot(tmp_path / "run-form.png")
        raise

    (run,) = httpx.post(
        f"{api}/flow_runs/filter", json={"flow_runs": {"name": {"any_": [name]}}}, timeout=30
    ).json()
    sent = run["parameters"]["request"]
    assert sent["engine"]["kind"] == "scripted"
    assert sent["strategies"]["majority"]["n"] == [1, 2, 4, 8]
    assert sent["strategies"]["best_of_n"] is None

    deadline = time.monotonic() + scaled(120)
    while (state := httpx.get(f"{api}/flow_runs/{run['id']}").json()["state"])["type"] not in FINAL:
        assert time.monotonic() < deadline, f"flow run still {state['type']}"
        time.sleep(1)
    assert state["type"] == "COMPLETED", state
    con = open_ledger(str(out / "ledger.duckdb"))
    try:
        row = con.execute("SELECT count(*) FROM item_decisions").fetchone()
    finally:
        con.close()
    assert row == (ITEMS * DEFAULT_UNITS_PER_ITEM,)
