"""Upstream (llm-d-inference-sim) flat config files and command lines of the kinds its
``manifests/`` directory ships, written for these tests: together they use every key and flag
form those examples use (integer and string durations, a snake_case key upstream ignores,
retired keys, nulls, JSON-text LoRA and fake-metrics entries, generator functions, the
``engine`` key, sglang's names, latency calculators), so that they "run unchanged" here too."""

from __future__ import annotations

FLAT_CONFIGS: dict[str, str] = {
    "int-latencies": """\
port: 8101
model: "Qwen/Qwen2-0.5B"
max-num-seqs: 6
mode: "random"
time-to-first-token: 1500
inter-token-latency: 20
kv_cache_transfer_latency: 40
seed: 4242
""",
    "loras-and-names": """\
port: 8102
model: "Qwen/Qwen2-0.5B"
served-model-name:
- "alpha"
- "beta"
max-loras: 3
max-cpu-loras: 6
max-num-seqs: 4
lora-modules:
- '{"name":"sql-adapter","path":"/adapters/sql"}'
- '{"name":"chat-adapter","path":"/adapters/chat"}'
mode: "echo"
time-to-first-token: 300
inter-token-latency: 10
kv_cache_transfer_latency: 25
seed: 7
""",
    "legacy-fake-metrics": """\
model: "Qwen/Qwen2-0.5B"
max-loras: 2
max-cpu-loras: 4
max-num-seqs: 8
mode: "random"
time-to-first-token: 900
inter-token-latency: 30
kv-cache-transfer-latency: 50
seed: 99
fake-metrics:
  running-requests: 12
  waiting-requests: 2
  kv-cache-usage: 0.25
  request-success-total:
    stop: 11
    length: 3
    tool_calls: 1
    remote_decode: 0
  request-prompt-tokens: [ 5, 15, 25 ]
  request-generation-tokens: [ 40, 30, 20 ]
  request-params-max-tokens: [ 64, 128 ]
  loras:
  - '{"running":"sql-adapter","waiting":"chat-adapter","timestamp":1700000000}'
  - '{"running":"sql-adapter,chat-adapter","waiting":"","timestamp":1700000002}'
  ttft-buckets-values: [3, 6, 9]
  tpot-buckets-values: [0, 1, 2, 3]
""",
    "dumped-config": """\
block-size: 32
data-parallel-size: 1
enable-kvcache: false
event-batch-size: 8
failure-injection-rate: 0
failure-types: null
fake-metrics:
  kv-cache-usage: 0.7
  running-requests: 3
  waiting-requests: 9
hash-seed: 'seed-text'
inter-token-latency: 40
inter-token-latency-std-dev: 10
kv-cache-size: 2048
kv-cache-transfer-latency: 0
kv-cache-transfer-latency-std-dev: 0
kv-cache-transfer-time-per-token: 50
kv-cache-transfer-time-std-dev: 20
lora-modules: null
max-cpu-loras: 2
max-loras: 2
max-model-len: 2048
max-num-seqs: 3
max-tool-call-array-param-length: 4
max-tool-call-integer-param: 50
max-tool-call-number-param: 75
min-tool-call-array-param-length: 2
min-tool-call-integer-param: 5
min-tool-call-number-param: 1
mode: random
model: Qwen/Qwen2.5-1.5B-Instruct
object-tool-call-not-required-field-probability: 40
port: 8103
prefill-overhead: 60
prefill-time-per-token: 15
prefill-time-std-dev: 4
seed: 1757050700239757600
served-model-name:
  - Qwen/Qwen2.5-1.5B-Instruct
time-factor-under-load: 4
time-to-first-token: 0
time-to-first-token-std-dev: 0
tokenizers-cache-dir: ''
tool-call-not-required-param-probability: 60
zmq-endpoint: tcp://localhost:5599
zmq-max-connect-attempts: 0
""",
    "engine-vllm": """\
engine: vllm
port: 8104
model: "Qwen/Qwen2-VL-2B-Instruct"
served-model-name:
- "first"
- "second"
max-loras: 2
max-cpu-loras: 3
max-num-seqs: 6
lora-modules:
- '{"name":"summarizer","path":"/adapters/sum"}'
mode: "random"
time-to-first-token: "1500ms"
inter-token-latency: "40ms"
kv-cache-transfer-latency: "2s"
seed: 31337
""",
    "engine-vllm-fake-metrics": """\
engine: vllm
model: "Qwen/Qwen2-VL-2B-Instruct"
max-loras: 2
max-cpu-loras: 2
max-num-seqs: 3
mode: "random"
time-to-first-token: "1s"
inter-token-latency: "20ms"
kv-cache-transfer-latency: "50ms"
seed: 5
fake-metrics:
  running-requests: 4
  waiting-requests: squarewave:1:6:2s
  kv-cache-usage: 0.5
  request-success-total:
    stop: 7
  request-prompt-tokens: [ 1, 2, 3 ]
  request-generation-tokens: [ 3, 2, 1 ]
  request-params-max-tokens: [ 10, 20 ]
  request-max-generation-tokens: [0, 5, 5]
  loras:
  - '{"running":"summarizer","waiting":"","timestamp":1700000100}'
  ttft-buckets-values: [1, 1, 1]
  tpot-buckets-values: [0, 4, 4]
""",
    "engine-sglang": """\
engine: sglang
port: 8105
model: "Qwen/Qwen2-VL-2B-Instruct"
served-model-name:
- "first"
context-length: 4096
max-running-requests: 9
max-queued-requests: 100
mode: "random"
time-to-first-token: "500ms"
inter-token-latency: "25ms"
kv-cache-transfer-latency: "10ms"
seed: 11
""",
    "profile-constant": """\
# A mid-size model, constant calculator.
engine: vllm
port: 8000
model: "example/model-8b"
max-num-seqs: 12
mode: "random"
latency-calculator: constant

time-to-first-token: 150ms
time-to-first-token-std-dev: 30ms
inter-token-latency: 14ms
inter-token-latency-std-dev: 3ms

kv-cache-transfer-latency: 4ms
kv-cache-transfer-latency-std-dev: 800us

time-factor-under-load: 2.5
""",
    "profile-per-token": """\
# A mid-size model, per-token calculator.
engine: vllm
port: 8000
model: "example/model-8b"
max-num-seqs: 12
mode: "random"
latency-calculator: per-token

inter-token-latency: 14ms
inter-token-latency-std-dev: 3ms

prefill-overhead: 25ms
prefill-time-per-token: 300us
prefill-time-std-dev: 6ms

kv-cache-transfer-time-per-token: 5us
kv-cache-transfer-time-std-dev: 300us

time-factor-under-load: 2.5
""",
    "profile-coarse": """\
# No calculator named: upstream's legacy rule picks constant (TTFT is set).
port: 8000
model: "example/model-70b"
max-num-seqs: 48
mode: "random"

time-to-first-token: 250ms
time-to-first-token-std-dev: 50ms
inter-token-latency: 30ms
inter-token-latency-std-dev: 5ms

kv-cache-transfer-latency: 3ms
kv-cache-transfer-latency-std-dev: 500us

time-factor-under-load: 3.5
""",
    "profile-fine": """\
# No calculator named: upstream's legacy rule picks per-token (TTFT is 0).
port: 8000
model: "example/model-70b"
max-num-seqs: 48
mode: "random"

inter-token-latency: 30ms
inter-token-latency-std-dev: 5ms

prefill-overhead: 90ms
prefill-time-per-token: 600us
prefill-time-std-dev: 20ms

kv-cache-transfer-time-per-token: 9us
kv-cache-transfer-time-std-dev: 600us

time-factor-under-load: 3.5
""",
}

INVALID_CONFIG = """\
port: 8106
model: "Qwen/Qwen2-0.5B"
max-num-seqs: 5
mode: "random"
time-to-first-token: "1s"
inter-token-latency: "500ms"
kv-cache-transfer-latency: "20ms"
seed: 1
zmq-max-connect-attempts: -5
"""
"""Upstream ships a config that must be refused: a retired key with a negative count."""

COMMAND_LINES: dict[str, list[str]] = {
    "model-port-verbosity": ["--model", "Qwen/Qwen3-0.6B", "--port", "{port}", "--v=5"],
    "kv-cache-bool-with-value": [
        "--model",
        "Qwen/Qwen2.5-1.5B-Instruct",
        "--port",
        "{port}",
        "--enable-kvcache",
        "true",
        "--v=5",
        "--render-url",
        "http://localhost:8082",
    ],
    "equals-forms-and-int-durations": [
        "--v=4",
        "--port={port}",
        "--model=meta-llama/Llama-3.1-8B-Instruct",
        "--data-parallel-size=1",
        "--prefill-time-per-token=200",
        "--prefill-time-std-dev=3",
        "--render-url=http://localhost:8082",
    ],
    "kv-events": [
        "--port={port}",
        "--model=Qwen/Qwen3-0.6B",
        "--enable-kvcache=true",
        "--block-size=8",
        "--zmq-endpoint=tcp://127.0.0.1:5598",
        "--event-batch-size=1",
        "--render-url=http://localhost:8082",
    ],
}
"""Command lines of the shapes upstream's Kubernetes manifests use (``{port}``: a free port)."""
