from pathlib import Path

from llmsim.calibration.runinfo import read_run_info

LOG = """\
INFO 01-21 10:48:01 vllm.entrypoints.utils: non-default args: {'model': '/m/llama', \
'max_model_len': 4096, 'served_model_name': ['meta-llama/Llama-2-7b-hf'], \
'max_num_batched_tokens': 2048, 'max_num_seqs': 128}
INFO vllm.v1.engine.core: Initializing a V1 LLM engine (v0.11.0) with config: \
model='/m/llama', served_model_name=meta-llama/Llama-2-7b-hf, tensor_parallel_size=2, seed=0
INFO vllm.config.scheduler: Chunked prefill is enabled with max_num_batched_tokens=2048.
INFO vllm.v1.core.kv_cache_utils: GPU KV cache size: 119,008 tokens
"""


def test_settings_come_from_the_exp_config_first(tmp_path: Path) -> None:
    (tmp_path / "exp-config.yaml").write_text(
        "model: codellama/CodeLlama-34b-Instruct-hf\ntensor_parallelism: 1\n"
        "max_num_batched_tokens: 4096\nmax_num_seqs: 256\n"
    )
    (tmp_path / "vllm.log").write_text(LOG)
    info = read_run_info(tmp_path / "traces.json")
    assert info.max_num_batched_tokens == 4096
    assert info.max_num_seqs == 256
    assert info.model == "codellama/CodeLlama-34b-Instruct-hf"
    assert info.tensor_parallel_size == 1
    assert info.vllm_version == "0.11.0"
    assert info.kv_cache_tokens == 119008
    assert info.sources == [str(tmp_path / "exp-config.yaml"), str(tmp_path / "vllm.log")]


def test_the_server_log_alone_is_enough(tmp_path: Path) -> None:
    (tmp_path / "vllm.log").write_text(LOG)
    info = read_run_info(tmp_path / "traces.json")
    assert info.max_num_batched_tokens == 2048
    assert info.max_num_seqs == 128
    assert info.model == "meta-llama/Llama-2-7b-hf"
    assert info.tensor_parallel_size == 2


def test_nothing_beside_the_trace_means_nothing_known(tmp_path: Path) -> None:
    (tmp_path / "exp-config.yaml").write_text("- not a mapping\n")
    info = read_run_info(tmp_path / "traces.json")
    assert info.max_num_batched_tokens is None
    assert info.model is None
    assert info.sources == []
