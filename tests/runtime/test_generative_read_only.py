"""A GGUF model on a read-only volume, as every pod mounts its model: GenAI's GGUF reader
opens the file read-write, so kubevino-serve loads it from a private copy in the temporary
directory and removes the copy as soon as the pipeline is built."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from kubevino_runtime.demo_generative import write_llama_gguf
from tests.runtime.serving import running_server

pytestmark = pytest.mark.runtime


def test_a_read_only_gguf_serves_from_a_copy_that_is_gone_once_loaded(tmp_path: Path) -> None:
    gguf = write_llama_gguf(tmp_path / "volume")
    gguf.chmod(0o444)
    gguf.parent.chmod(0o555)
    scratch = tmp_path / "tmp"  # the pod's /tmp emptyDir
    scratch.mkdir()
    with running_server(
        ["--task", "text_generation", "--model_path", str(gguf), "--model_name", "tiny",
         "--target_device", "CPU", "--cache_size", "1"],
        tmp_path,
        unprivileged=True,  # file modes bind the server, as they bind a pod's process
        env={"TMPDIR": str(scratch)},
    ) as server:  # fmt: skip
        server.wait_ready()
        client = openai.OpenAI(base_url=f"{server.rest}/v3", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "hello"}],
            max_tokens=4,
            extra_body={"ignore_eos": True},
        )
        assert reply.usage is not None and reply.usage.completion_tokens == 4
        assert f"{gguf} is read-only, which GenAI cannot open: loading from a copy" in server.log()
        assert list(scratch.iterdir()) == []
