"""Secrets never reach a file or the terminal (issue 10, item 7): keys in the endpoint URL,
in a study's engine.env and in --engine-arg=--api-key=... are redacted by every writer."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from tests.conftest import run_cli
from tests.fake_server import FakeServer, Programme

URL_KEY = "urlkey-5f1e9a7c"
ARG_KEY = "argkey-0b3d6e21"
ENV_KEY = "envkey-c4a8f2d9"
SECRETS = (URL_KEY, ARG_KEY, ENV_KEY)
FAST = Programme(ttft_s=0.002, itl_s=0.0005, reasoning_tokens=3, answer_tokens=3)


def test_urls_lose_their_credentials():
    from reasonperf.redact import Redactor, redact, redact_args, redact_env, redact_text, redact_url  # noqa: F401

    assert redact_url("http://user:pw-123@host:8000/v1") == "http://***@host:8000/v1"
    assert redact_url("http://host:8000/v1") == "http://host:8000/v1"
    assert redact_url("https://h/v1?api_key=abc&x=1") == "https://h/v1?api_key=***&x=1"


def test_env_values_with_secret_names_are_masked():
    from reasonperf.redact import Redactor, redact, redact_args, redact_env, redact_text, redact_url  # noqa: F401

    env = {"HF_TOKEN": "t", "OPENAI_API_KEY": "k", "DB_PASSWORD": "p", "AWS_SECRET": "s",
           "VLLM_CPU_KVCACHE_SPACE": "1", "MAX_TOKENS_HINT": "8"}
    assert redact_env(env) == {"HF_TOKEN": "***", "OPENAI_API_KEY": "***", "DB_PASSWORD": "***",
                               "AWS_SECRET": "***", "VLLM_CPU_KVCACHE_SPACE": "1",
                               "MAX_TOKENS_HINT": "8"}


def test_secret_flag_values_are_masked_in_both_forms():
    from reasonperf.redact import Redactor, redact, redact_args, redact_env, redact_text, redact_url  # noqa: F401

    args = ["--api-key=k1", "--hf-token", "t1", "--max-num-batched-tokens", "512",
            "--ssl-keyfile", "/etc/k.pem", "--tokenizer", "tok", "--admin-api-key", "k2"]
    assert redact_args(args) == ["--api-key=***", "--hf-token", "***",
                                 "--max-num-batched-tokens", "512", "--ssl-keyfile",
                                 "/etc/k.pem", "--tokenizer", "tok", "--admin-api-key", "***"]


def test_free_text_and_nested_objects():
    from reasonperf.redact import Redactor, redact, redact_args, redact_env, redact_text, redact_url  # noqa: F401

    line = ("endpoint http://u:pw-9@h/v1 is unreachable; cmd --api-key sk-1 "
            "HF_TOKEN=hf-2 Authorization: Bearer sk-3")
    out = redact_text(line)
    for s in ("pw-9", "sk-1", "hf-2", "sk-3"):
        assert s not in out
    assert "http://***@h/v1" in out
    obj = {"engine": {"url": "http://a:b-secret@h", "env": {"HF_TOKEN": "x-secret"},
                      "extra_args": ["--api-key", "y-secret"], "max_tokens": 5},
           "token_count_source": "usage", "settings": {"engine.env.HF_TOKEN": "z-secret"}}
    text = repr(redact(obj))
    assert "secret" not in text and "usage" in text and "5" in text
    assert Redactor(frozenset({"leaked-value"})).text("server said leaked-value") == \
        "server said ***"


def _assert_clean(root: Path, *outputs: str) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    for p in files:
        data = p.read_bytes()
        for s in SECRETS:
            assert s.encode() not in data, (p, s)
    for text in outputs:
        for s in SECRETS:
            assert s not in text, s


def test_a_run_with_secrets_in_url_and_engine_args_stores_none(tmp_path):
    with FakeServer(FAST) as srv:
        url = f"http://bench:{URL_KEY}@127.0.0.1:{srv.port}/v1"
        proc = run_cli("run", "--endpoint", url, "--model", "fake-model", "--limit", "3",
                       f"--engine-arg=--api-key={ARG_KEY}", "--out", str(tmp_path),
                       "--no-grade")
        assert proc.returncode == 0, proc.stderr
        assert srv.requests_received >= 3  # and the continuous-usage probe
    _assert_clean(tmp_path, proc.stdout, proc.stderr)
    info = next(tmp_path.glob("*/run.json")).read_text()
    assert "http://***@127.0.0.1" in info and "--api-key=***" in info


def test_an_error_line_names_no_secret(tmp_path):
    proc = run_cli("run", "--endpoint", f"http://bench:{URL_KEY}@127.0.0.1:9/v1", "--model",
                   "m", f"--engine-arg=--api-key={ARG_KEY}", "--out", str(tmp_path))
    assert proc.returncode == 2
    _assert_clean(tmp_path, proc.stdout, proc.stderr) if any(tmp_path.rglob("*")) else None
    for s in SECRETS:
        assert s not in proc.stdout + proc.stderr


def test_a_study_with_secrets_in_all_three_places_stores_none(tmp_path):
    with FakeServer(FAST) as srv:
        spec = {"name": "secret",
                "base": {"engine": {"kind": "external", "model": "fake-model",
                                    "url": f"http://bench:{URL_KEY}@127.0.0.1:{srv.port}/v1",
                                    "env": {"HF_TOKEN": ENV_KEY},
                                    "extra_args": [f"--api-key={ARG_KEY}"]},
                         "workload": {"name": "procedural", "limit": 2}},
                "matrix": {"max_tokens": [8, 16]}}
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump(spec))
        out = tmp_path / "out"
        proc = run_cli("study", str(path), "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        assert srv.requests_received >= 4
    _assert_clean(out, proc.stdout, proc.stderr)
    assert (out / "study.json").exists() and list(out.glob("*/cell.json"))


def test_launched_engine_command_and_launch_log_carry_no_secret(tmp_path):
    from reasonperf.engines import EngineSpec, VllmEngine
    from reasonperf.engines.process import ManagedProcess

    spec = EngineSpec(kind="vllm", model=str(tmp_path / "model"),
                      extra_args=["--api-key", ARG_KEY, f"--hf-token={ENV_KEY}"],
                      env={"HF_TOKEN": ENV_KEY})
    described = repr(VllmEngine(spec).describe())
    for s in SECRETS:
        assert s not in described
    assert "--api-key" in described
    log = tmp_path / "engine.log"
    proc = ManagedProcess([sys.executable, "-c", "pass", "--api-key", ARG_KEY], {}, log)
    proc.start()
    proc.stop(5)
    assert "--api-key ***" in log.read_text() and ARG_KEY not in log.read_text()


def test_a_run_whose_secrets_were_redacted_refuses_to_resume_with_them(tmp_path):
    with FakeServer(FAST) as srv:
        url = f"http://bench:{URL_KEY}@127.0.0.1:{srv.port}/v1"
        proc = run_cli("run", "--endpoint", url, "--model", "fake-model", "--limit", "3",
                       "--out", str(tmp_path), "--no-grade")
        assert proc.returncode == 0, proc.stderr
        run_dir = next(tmp_path.glob("*/run.json")).parent
        (run_dir / "summary.json").unlink()
        (run_dir / "requests.jsonl").write_bytes(b"")
        again = run_cli("run", "--resume", str(run_dir))
    assert again.returncode == 2, again.stderr
    assert "credentials in engine.url" in again.stderr and "environment" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
